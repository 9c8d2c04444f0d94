"""What each family's golden fingerprint computes (:mod:`ganbench.run.fingerprints` records and
checks them): the harness's batches and sample streams, a pinned domain network's features,
a domain network's short training, an architecture's first steps, a dataset's splits and an
evaluator's scores, each on the fixed inputs of :mod:`ganbench.run.fingerprint_inputs`.
Architectures and evaluators run in float64 (:func:`float64`)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ganbench.core.errors import NotApplicable
from ganbench.core.evaluation import as_evaluation
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import DATASETS, EXPLAINERS, METRICS
from ganbench.datasets.base import DatasetSpec, TensorImages
from ganbench.datasets.domain import PINNED_DIR, load_domain_network, train_domain_network
from ganbench.run.fingerprint_inputs import (
    GREY32,
    builtin_dataset,
    evaluator_params,
    evaluator_setup,
    feature_dir,
    local_root,
    random_images,
    small_architecture,
)
from ganbench.run.numerics import seed_everything
from ganbench.run.train_loop import train_model


def _stats(prefix: str, x: torch.Tensor) -> dict[str, float]:
    """Sum, sum of squares, and a fixed-weight sum that moves when elements are reordered."""
    x = x.detach().double().cpu().flatten()
    w = torch.linspace(-1, 1, len(x), dtype=torch.float64) if len(x) else x
    return {
        f"{prefix}_sum": float(x.sum()),
        f"{prefix}_sumsq": float((x * x).sum()),
        f"{prefix}_weighted": float((x * w).sum()),
    }


def plain_values(raw: dict[str, Any]) -> dict[str, float | list[float]]:
    """The numbers as a fingerprint file keeps them: a float, or a flat list of floats."""
    out: dict[str, float | list[float]] = {}
    for k, v in raw.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().double().cpu().flatten().tolist()
            out[k] = v if len(v) != 1 else v[0]
        elif isinstance(v, (list, tuple)):
            out[k] = [float(e) for e in v]
        else:
            out[k] = float(v)
    return out


class _Probe:
    """An architecture that records the batches the harness hands its training step."""

    name = "probe"

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []
        self.generator = self.discriminator = torch.nn.Identity()
        self.latent_dim = 3

    def to(self, device):
        return self

    def train(self):
        return self

    def eval(self):
        return self

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(real.clone())
        return {"batch_mean": real.mean()}

    def sample_latent(self, n: int, generator=None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z.sum(1)).reshape(-1, 1, 1, 1).expand(-1, 1, 4, 4)


class _Tiny:
    """A dataset of 20 distinct images."""

    def split(self, which: str):
        base = 0 if which == "train" else 100
        return TensorImages(torch.arange(base, base + 20).float().reshape(20, 1, 1, 1))


def harness_values() -> dict[str, Any]:
    """The training loop's batches and the sample streams of EvalContext (SCHEMA_VERSION)."""
    seed_everything(3)
    probe = _Probe()
    images = _Tiny().split("train").images
    out = train_model(probe, images, steps=7, batch_size=6, seed=3, device=torch.device("cpu"))
    values: dict[str, Any] = {"final_batch_mean": out["final_batch_mean"]}
    values["batches"] = torch.stack([b.flatten() for b in probe.seen])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EvalContext(probe, _Tiny(), torch.device("cpu"), 5, Path(tmp))
        values["reals_test"] = ctx.reals(4).flatten()
        values["reals_train"] = ctx.reals(4, "train").flatten()
        values |= _stats("fakes", ctx.fakes(10, batch_size=4))
        values["rng"] = torch.rand(3, generator=ctx.rng(9))
        values |= _stats("pixels", ctx.features("pixels", "fake", 10))
        real_ctx = EvalContext(None, _Tiny(), torch.device("cpu"), 5, Path(tmp))
        values["reference_fakes"] = real_ctx.fakes(4).flatten()
    return values


def domain_values(dataset: str) -> dict[str, Any]:
    """The pinned network's features and predictions on the dataset's first 16 test images
    (the full feature matrix: ``tests/test_pinned_domain.py`` reads it as reference values)."""
    pinned = PINNED_DIR / dataset
    meta = json.loads((pinned / "domain.json").read_text())
    net = load_domain_network(pinned, "cpu", meta["sha256"])
    ds = builtin_dataset(dataset)
    if meta["dataset"]["params"] != ds.params:
        ds = DATASETS.create(dataset, **meta["dataset"]["params"])
    x = ds.split("test").images[:16]
    with torch.no_grad():
        values: dict[str, Any] = {"features": net.features(x)}
        for head, pred in net.predict(x).items():
            values[f"predict_{head}"] = pred
    return values


class _Labelled:
    """Three classes of 16x16 grey images, class c lighting a band of rows."""

    spec = DatasetSpec(name="labelled", version="fp", image_size=16, channels=1, num_classes=3)
    domain_training: dict[str, Any] = {}

    def split(self, which: str) -> TensorImages:
        g = torch.Generator().manual_seed(0 if which == "train" else 1)
        labels = torch.arange(48) % 3
        images = torch.rand(48, 1, 16, 16, generator=g) * 0.5 - 1
        for c in range(3):  # class c lights a band of rows
            images[labels == c, :, 4 * c : 4 * c + 4] += 1.2
        return TensorImages(images.clamp(-1, 1), labels)


def domain_training_values() -> dict[str, Any]:
    """A domain network trained by the suite for one short epoch (the path of datasets
    without a pinned network), its held-out scores and weights."""
    net, metrics = train_domain_network(
        _Labelled(), {"epochs": 2, "batch_size": 16, "width": 4, "shift": 1}
    )
    metrics.pop("train_s")
    out: dict[str, Any] = dict(metrics)
    out |= _stats("weights", torch.cat([p.flatten() for p in net.state_dict().values()]))
    return out


# Architectures and evaluators are fingerprinted in float64 (see :func:`float64`); the
# migration's evidence runs them in float32 (as trials do) to compare two codes on one machine
FLOAT64 = True


@contextmanager
def float64() -> Iterator[None]:
    """New tensors and modules in float64: the differences between thread counts and SIMD
    widths (float32 sums in another order, ~1e-7) shrink to ~1e-16, so a few training steps
    cannot amplify them past the tolerance on any x86 CPU."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if FLOAT64 else saved)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


class _InDefaultDtype:
    """A dataset whose splits hand out images in the default dtype (float64 in fingerprints)."""

    def __init__(self, dataset) -> None:
        self._dataset = dataset

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)

    def split(self, which: str):
        s = self._dataset.split(which)
        return TensorImages(s.images.to(torch.get_default_dtype()), s.labels, dict(s.extras))


def architecture_values(name: str) -> dict[str, Any]:
    """Init, generate, D's logits and three harness training steps at width 8 on 32x32x1,
    in float64."""
    with float64():
        return _architecture_values(name)


def _architecture_values(name: str) -> dict[str, Any]:
    seed_everything(0)
    arch = small_architecture(name, GREY32)
    z = arch.sample_latent(8, torch.Generator().manual_seed(0))
    real = random_images(GREY32, 32, seed=1)
    values: dict[str, Any] = _stats("latent", z)
    arch.eval()
    with torch.no_grad():
        values |= _stats("generate", arch.generate(z))
        values["logits"] = arch.discriminator_logits(real[:8])
    steps = train_model(arch, real, 3, 8, seed=0, device=torch.device("cpu"), log_every=1)
    values |= {k: v for k, v in steps.items() if k.startswith("final_")}
    arch.eval()
    with torch.no_grad():
        values |= _stats("trained_generate", arch.generate(z))
        values["trained_logits"] = arch.discriminator_logits(real[:8])
    return values


def dataset_values(name: str) -> dict[str, Any]:
    """Split sizes and contents, labels, factors, masks and the segmenter's output."""
    cls = DATASETS.get(name)
    with tempfile.TemporaryDirectory() as tmp:
        local = "root" in cls.defaults
        ds = cls(root=str(local_root(name, Path(tmp) / name))) if local else builtin_dataset(name)
        values: dict[str, Any] = {}
        for which in ("train", "test"):
            split = ds.split(which)
            values[f"{which}_n"] = len(split.images)
            values |= _stats(f"{which}_images", split.images)
            if split.labels is not None:
                values |= _stats(f"{which}_labels", split.labels)
            for extra, tensor in sorted(split.extras.items()):
                values |= _stats(f"{which}_{extra}", tensor.float())
        pinned = PINNED_DIR / name
        net = load_domain_network(pinned) if (pinned / "domain.json").is_file() else None
        segmenter = ds.segmenter(net)
        if segmenter is not None:
            masks = segmenter(ds.split("test").images[:16])
            values |= _stats("segmenter", masks.float())
    return values


def evaluator_values(name: str) -> dict[str, Any]:
    """The evaluator's scores on a small architecture trained ten steps, on a built-in dataset
    with its pinned domain network, in float64."""
    with float64():
        return _evaluator_values(name)


def _evaluator_values(name: str) -> dict[str, Any]:
    arch_name, dataset = evaluator_setup(name)
    reg = METRICS if name in METRICS else EXPLAINERS
    ds = _InDefaultDtype(builtin_dataset(dataset))
    seed_everything(0)
    model = None
    if arch_name:  # ten steps: off the initialisation, where some scores sit at a bound
        model = small_architecture(arch_name, ds.spec)
        images = ds.split("train").images[:160]
        train_model(model, images, 10, 16, seed=0, device=torch.device("cpu"), log_every=5)
        model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = reg.create(name, **evaluator_params(name, Path(tmp)))
        pinned = PINNED_DIR / dataset
        artifacts = Path(tmp) / "artifacts"
        artifacts.mkdir()
        ctx = EvalContext(
            model,
            ds,
            torch.device("cpu"),
            0,
            artifacts,
            domain_dir=pinned,
            feature_dir=feature_dir(arch_name, dataset),
        )
        try:
            scores = as_evaluation(evaluator.evaluate(ctx)).scores
        except NotApplicable as exc:
            return {"not_applicable": 1.0, "message_length": float(len(str(exc)))}
    # costs (seconds, memory) are measurements of the machine, not numbers the code computes
    return {k: v for k, v in scores.items() if getattr(evaluator.score(k), "compared", True)}


def compute_values(family: str, name: str) -> dict[str, Any]:
    """The raw numbers of one component's fingerprint (:func:`plain_values` makes them floats)."""
    if family == "harness":
        return harness_values()
    if family == "domain":
        return domain_training_values() if name == "training" else domain_values(name)
    if family == "architecture":
        return architecture_values(name)
    if family == "dataset":
        return dataset_values(name)
    return evaluator_values(name)
