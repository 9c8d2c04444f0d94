"""Golden fingerprints: the numbers each component computes on a tiny, fixed CPU input.

Keys name components by their declared ``version`` (:mod:`ganbench.run.keys`), so the suite
must notice when code starts computing other numbers under an unchanged version. Each
built-in architecture, dataset, metric and explainer, the harness (``SCHEMA_VERSION``) and
each pinned domain network has a fingerprint: a deterministic run of a second or less
whose numbers are kept in ``tests/fingerprints/<family>/<name>.json`` beside the versions
they were recorded at. ``make test`` recomputes them (``tests/test_fingerprints.py``):

* numbers moved, versions unchanged: fail, naming the component, its file and the version
  to bump, then the command that re-records the fingerprint;
* a version changed since the recording: fail until the fingerprint is re-recorded;
* numbers and versions as recorded: pass.

Numbers are compared with :data:`RTOL`/:data:`ATOL` (float32 arithmetic whose summation
order differs between thread counts and CPU instruction sets), see :func:`compare`.
A fingerprint exercises the code paths of a real trial (the architecture's ``train_step``
through the harness loop, an evaluator through :class:`EvalContext` with the pinned
domain network) on inputs small enough for the whole set to run in well under a minute.

``ganbench fingerprint`` checks them and prints a table; ``ganbench fingerprint --record
NAME ...`` re-records (refusing, without ``--force``, numbers that moved under unchanged
versions).
"""

from __future__ import annotations

import gzip
import json
import math
import pickle
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.core.errors import GanbenchError, NotApplicable
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import ARCHITECTURES, DATASETS, EXPLAINERS, METRICS, Registry
from ganbench.datasets.base import DatasetSpec
from ganbench.datasets.domain import DOMAIN_VERSION, PINNED_DIR, load_domain_network
from ganbench.run.keys import SCHEMA_VERSION, source_file_hash

# float32 results whose reductions run in another order (threads, SIMD width) agree to a few
# ulps; the chains of a fingerprint (a few training steps, then a score) amplify that to ~1e-6
RTOL = 1e-4
ATOL = 1e-6
FAMILIES = ("harness", "domain", "architecture", "dataset", "metric", "explainer")
_REGISTRIES: dict[str, Registry] = {
    "architecture": ARCHITECTURES,
    "dataset": DATASETS,
    "metric": METRICS,
    "explainer": EXPLAINERS,
}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tests" / "fingerprints"

# small versions of each architecture (on top of width 8 where it has a width): a step that
# reaches every branch (IF-GAN's refit of Q, StyleGAN's lazy R1) within 3 steps
ARCHITECTURE_PARAMS: dict[str, dict[str, Any]] = {
    "ifgan": {"refit_every": 2, "fit_samples": 16, "fit_iters": 3, "fit_restarts": 1},
    "stylegan": {"mapping_layers": 2, "r1_interval": 2, "mbstd_group": 2},
}
# each evaluator at a size that runs in about a second on one CPU core
EVALUATOR_PARAMS: dict[str, dict[str, Any]] = {
    "c2st": {"n": 64, "epochs": 1, "width": 8},
    "fid_inception": {"n": 8, "kid_subset_size": 4, "kid_subsets": 2, "batch_size": 8},
    "fidelity": {"n": 64, "kid_subset_size": 16, "kid_subsets": 4},
    "knn_c2st": {"n": 64},
    "memorisation": {"n": 64},
    "mmd": {"n": 64, "permutations": 20},
    "mmd_domain": {"n": 64, "permutations": 20},
    "one_nn": {"n": 64},
    "ppl": {"n": 32, "batch_size": 32},
    "ppl_w": {"n": 32, "batch_size": 32},
    "attention": {"n": 8, "figure_images": 2},
    "code_factors": {"n": 64},
    "codes": {"n_per_category": 8, "sweep_steps": 3, "shuffles": 5, "figure": False},
    "dissection": {
        "n": 32,
        "n_intervention": 16,
        "quantile": 0.9,
        "random_repeats": 1,
        "batch_size": 32,
        "figure": False,
    },
    "filter_groups": {"n": 16, "figure": False},
    "filter_maps": {"n": 16, "random_repeats": 1, "figure": False},
    "latent_sweep": {"n": 2, "figure": False},
    "seams": {"n": 32, "figure": False},
}
_ATTRIBUTION = {
    "n": 4,
    "curve_steps": 4,
    "infidelity_perturbations": 4,
    "sensitivity_perturbations": 2,
    "figure": False,
    # the fingerprint's briefly trained D moves its logit ~1e-4 nats: at the default 0.5-nat
    # floor every faithfulness score would sit at chance and pin little
    "min_response": 1e-4,
}
EVALUATOR_PARAMS |= {
    "deeplift": _ATTRIBUTION,
    "deepliftshap": _ATTRIBUTION | {"shap_baselines": 4},
    "integrated_gradients": _ATTRIBUTION | {"steps": 4},
    "smoothgrad": _ATTRIBUTION | {"samples": 4},
    "lime": _ATTRIBUTION | {"samples": 32},
}
_DIRECTIONS = {
    "directions": 4,
    "steps": 3,
    "batch_size": 8,
    "lr": 1e-3,
    "eval_samples": 32,
    "pca_samples": 64,
    "eval_batch_size": 32,
    "top_k": 2,
    "figure": False,
}
EVALUATOR_PARAMS |= {
    "directions": _DIRECTIONS,
    "directions_w": _DIRECTIONS,
    "directions_factors": _DIRECTIONS | {"n_align": 16},
}
# the architecture that scores an evaluator, by the capability it needs (else DCGAN)
CAPABILITY_MODEL = {
    "attention": "sagan",
    "codes": "infogan",
    "filter_groups": "ifgan",
    "coordinates": "cocogan",
    "styles": "stylegan",
}


@dataclass
class Fingerprint:
    """One component's numbers on its fixed input, with the versions they depend on."""

    family: str
    name: str
    version: str  # the component's own declared version
    values: dict[str, float | list[float]]
    # versions of what else the numbers depend on: {"architecture dcgan": "1", "schema": "2"}
    depends: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.family} {self.name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "component": self.label,
            "version": self.version,
            "depends": self.depends,
            "values": self.values,
            "recorded_with": {"torch": torch.__version__, "numpy": np.__version__},
        }


# --- what the fingerprints read -----------------------------------------------------------
def _stats(prefix: str, x: torch.Tensor) -> dict[str, float]:
    """Sum, sum of squares, and a fixed-weight sum that moves when elements are reordered."""
    x = x.detach().double().cpu().flatten()
    w = torch.linspace(-1, 1, len(x), dtype=torch.float64) if len(x) else x
    return {
        f"{prefix}_sum": float(x.sum()),
        f"{prefix}_sumsq": float((x * x).sum()),
        f"{prefix}_weighted": float((x * w).sum()),
    }


def _values(raw: dict[str, Any]) -> dict[str, float | list[float]]:
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


GREY32 = DatasetSpec(name="grey32", version="fingerprint", image_size=32, channels=1)


def _images(spec: DatasetSpec, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, spec.channels, spec.image_size, spec.image_size, generator=g) * 2 - 1


def small_architecture(name: str, spec: DatasetSpec, seed: int = 0):
    """``name`` at width 8 (where it has a width) with :data:`ARCHITECTURE_PARAMS`."""
    cls = ARCHITECTURES.get(name)
    params = {"width": 8} if "width" in cls.defaults else {}
    params |= {k: v for k, v in ARCHITECTURE_PARAMS.get(name, {}).items() if k in cls.defaults}
    torch.manual_seed(seed)
    return cls(spec, **params)


# --- the fingerprint of each family -------------------------------------------------------
def harness_values() -> dict[str, Any]:
    """The training loop's batches and the sample streams of EvalContext (SCHEMA_VERSION)."""
    from ganbench.run.numerics import seed_everything
    from ganbench.run.train_loop import train_model

    class Probe:
        """Records the batches the harness hands a training step."""

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

    class Tiny:
        """A dataset of 20 distinct images."""

        def split(self, which: str):
            from ganbench.datasets.base import TensorImages

            base = 0 if which == "train" else 100
            return TensorImages(torch.arange(base, base + 20).float().reshape(20, 1, 1, 1))

    seed_everything(3)
    probe = Probe()
    images = Tiny().split("train").images
    out = train_model(probe, images, steps=7, batch_size=6, seed=3, device=torch.device("cpu"))
    values: dict[str, Any] = {"final_batch_mean": out["final_batch_mean"]}
    values["batches"] = torch.stack([b.flatten() for b in probe.seen])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EvalContext(probe, Tiny(), torch.device("cpu"), 5, Path(tmp))
        values["reals_test"] = ctx.reals(4).flatten()
        values["reals_train"] = ctx.reals(4, "train").flatten()
        values |= _stats("fakes", ctx.fakes(10, batch_size=4))
        values["rng"] = torch.rand(3, generator=ctx.rng(9))
        values |= _stats("pixels", ctx.features("pixels", "fake", 10))
        real_ctx = EvalContext(None, Tiny(), torch.device("cpu"), 5, Path(tmp))
        values["reference_fakes"] = real_ctx.fakes(4).flatten()
    return values


def domain_values(dataset: str) -> dict[str, Any]:
    """The pinned network's features and predictions on the dataset's first 16 test images
    (the full feature matrix: ``tests/test_pinned_domain.py`` reads it as reference values)."""
    pinned = PINNED_DIR / dataset
    meta = json.loads((pinned / "domain.json").read_text())
    net = load_domain_network(pinned, "cpu", meta["sha256"])
    ds = _dataset(dataset) if meta["dataset"]["params"] == _dataset(dataset).params else None
    ds = ds or DATASETS.create(dataset, **meta["dataset"]["params"])
    x = ds.split("test").images[:16]
    with torch.no_grad():
        values: dict[str, Any] = {"features": net.features(x)}
        for head, pred in net.predict(x).items():
            values[f"predict_{head}"] = pred
    return values


def domain_training_values() -> dict[str, Any]:
    """A domain network trained by the suite for one short epoch (the path of datasets
    without a pinned network), its held-out scores and weights."""
    from ganbench.datasets.base import TensorImages
    from ganbench.datasets.domain import train_domain_network

    class Labelled:
        spec = DatasetSpec(name="labelled", version="fp", image_size=16, channels=1, num_classes=3)
        domain_training: dict[str, Any] = {}

        def split(self, which: str) -> TensorImages:
            g = torch.Generator().manual_seed(0 if which == "train" else 1)
            labels = torch.arange(48) % 3
            images = torch.rand(48, 1, 16, 16, generator=g) * 0.5 - 1
            for c in range(3):  # class c lights a band of rows
                images[labels == c, :, 4 * c : 4 * c + 4] += 1.2
            return TensorImages(images.clamp(-1, 1), labels)

    net, metrics = train_domain_network(
        Labelled(), {"epochs": 2, "batch_size": 16, "width": 4, "shift": 1}
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
        from ganbench.datasets.base import TensorImages

        s = self._dataset.split(which)
        return TensorImages(s.images.to(torch.get_default_dtype()), s.labels, dict(s.extras))


def architecture_values(name: str) -> dict[str, Any]:
    """Init, generate, D's logits and three harness training steps at width 8 on 32x32x1,
    in float64."""
    with float64():
        return _architecture_values(name)


def _architecture_values(name: str) -> dict[str, Any]:
    from ganbench.run.numerics import seed_everything
    from ganbench.run.train_loop import train_model

    seed_everything(0)
    arch = small_architecture(name, GREY32)
    z = arch.sample_latent(8, torch.Generator().manual_seed(0))
    real = _images(GREY32, 32, seed=1)
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


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(raw + array.astype(np.uint8).tobytes(), mtime=0))


def _pattern(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def local_root(name: str, root: Path) -> Path:
    """A tiny folder in the on-disk format of local dataset ``name`` (deterministic bytes)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        for prefix, n, seed in (("train", 12, 0), ("t10k", 4, 1)):
            images = _pattern(n, 28, 28, 1, seed)[..., 0]
            _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 0x803)
            _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
        return root
    if name == "cifar10":
        for i, batch in enumerate(
            [
                "data_batch_1",
                "data_batch_2",
                "data_batch_3",
                "data_batch_4",
                "data_batch_5",
                "test_batch",
            ]
        ):
            images = _pattern(3, 32, 32, 3, i).transpose(0, 3, 1, 2).reshape(3, -1)
            body = {b"labels": [(i + j) % 10 for j in range(3)], b"data": images}
            (root / batch).write_bytes(pickle.dumps(body, protocol=4))
        return root
    folder = {"celeba": root / "img_align_celeba", "lsun_bedroom": root / "bedroom"}.get(name)
    for i in range(12):
        where = folder or root / f"class_{i % 2}"
        where.mkdir(parents=True, exist_ok=True)
        pixels = _pattern(1, 24 + 2 * (i % 3), 20 + 4 * (i % 2), 3, 100 + i)[0]
        Image.fromarray(pixels).save(where / f"{i:06d}.png")
    return root


def dataset_values(name: str) -> dict[str, Any]:
    """Split sizes and contents, labels, factors, masks and the segmenter's output."""
    cls = DATASETS.get(name)
    with tempfile.TemporaryDirectory() as tmp:
        local = "root" in cls.defaults
        ds = cls(root=str(local_root(name, Path(tmp) / name))) if local else _dataset(name)
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


def evaluator_setup(name: str) -> tuple[str | None, str]:
    """The architecture (None: the real-data reference) and dataset an evaluator is scored on."""
    cls = (METRICS if name in METRICS else EXPLAINERS).get(name)
    dataset = "shapes" if "factors" in cls.requires_dataset else "digits"
    arch = "dcgan"
    for capability, model in CAPABILITY_MODEL.items():
        if capability in cls.requires:
            arch = model
    return arch, dataset


def evaluator_params(name: str, tmp: Path) -> dict[str, Any]:
    params = dict(EVALUATOR_PARAMS.get(name, {}))
    if name == "fid_inception":
        params["weights"] = str(random_inception_file(tmp / "inception.pth", seed=0))
    cls = (METRICS if name in METRICS else EXPLAINERS).get(name)
    return {k: v for k, v in params.items() if k in cls.defaults}


def random_inception_file(path: Path, seed: int) -> Path:
    """torch-fidelity's Inception-v3 at a seeded He-normal initialisation, saved as its
    weights file is (nothing is read or fetched): a stand-in for the published weights."""
    from unittest import mock

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    cls = FeatureExtractorInceptionV3
    with (
        mock.patch("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url"),
        mock.patch.object(cls, "load_state_dict"),
    ):
        net = cls("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=g) * (2 / fan_in) ** 0.5
                )
    torch.save(net.state_dict(), path)
    return path


_DATASETS: dict[str, Any] = {}
# domain features shared by the evaluators of one process that score the same samples (the same
# small architecture trained the same ten steps, or the real data, on one dataset): the
# extraction in float64 is most of a metric's fingerprint time, and cached features are the
# same numbers as fresh ones (EvalContext.features)
_FEATURE_DIRS: dict[tuple[str | None, str], tempfile.TemporaryDirectory] = {}


def _feature_dir(arch_name: str | None, dataset: str) -> Path:
    if (arch_name, dataset) not in _FEATURE_DIRS:
        _FEATURE_DIRS[arch_name, dataset] = tempfile.TemporaryDirectory(prefix="ganbench-fp-")
    return Path(_FEATURE_DIRS[arch_name, dataset].name)


def _dataset(name: str):
    """A built-in dataset at its defaults, made once per process (shapes renders 10,000 images)."""
    if name not in _DATASETS:
        _DATASETS[name] = DATASETS.create(name)
    return _DATASETS[name]


def evaluator_values(name: str) -> dict[str, Any]:
    """The evaluator's scores on a small architecture trained ten steps, on a built-in dataset
    with its pinned domain network, in float64."""
    with float64():
        return _evaluator_values(name)


def _evaluator_values(name: str) -> dict[str, Any]:
    from ganbench.run.numerics import seed_everything
    from ganbench.run.train_loop import train_model

    arch_name, dataset = evaluator_setup(name)
    reg = METRICS if name in METRICS else EXPLAINERS
    ds = _InDefaultDtype(_dataset(dataset))
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
            feature_dir=_feature_dir(arch_name, dataset),
        )
        try:
            scores = evaluator.evaluate(ctx)
        except NotApplicable as exc:
            return {"not_applicable": 1.0, "message_length": float(len(str(exc)))}
    # costs (seconds, memory) are measurements of the machine, not numbers the code computes
    return {k: v for k, v in scores.items() if getattr(evaluator.score(k), "compared", True)}


# --- computing, comparing, recording ------------------------------------------------------
def builtin_names(family: str) -> list[str]:
    """The built-in (shipped) members of a family: plugins keep fingerprints of their own."""
    if family == "harness":
        return ["schema"]
    if family == "domain":
        names = sorted(p.name for p in PINNED_DIR.iterdir() if (p / "domain.json").is_file())
        return ["training", *names]
    reg = _REGISTRIES[family]
    return [n for n in reg.names() if reg.get(n).__module__.startswith("ganbench.")]


def all_components() -> list[tuple[str, str]]:
    return [(family, name) for family in FAMILIES for name in builtin_names(family)]


def _version_of(family: str, name: str) -> str:
    if family == "harness":
        return str(SCHEMA_VERSION)
    if family == "domain":
        if name == "training":
            return DOMAIN_VERSION
        meta = json.loads((PINNED_DIR / name / "domain.json").read_text())
        return f"{DOMAIN_VERSION}/{meta['sha256'][:16]}"
    return str(_REGISTRIES[family].get(name).version)


def _depends(family: str, name: str) -> dict[str, str]:
    deps = {"schema": str(SCHEMA_VERSION)}
    if family in ("metric", "explainer"):
        arch, dataset = evaluator_setup(name)
        deps[f"architecture {arch}"] = _version_of("architecture", arch)
        deps[f"dataset {dataset}"] = _version_of("dataset", dataset)
        if (PINNED_DIR / dataset / "domain.json").is_file():
            deps[f"domain {dataset}"] = _version_of("domain", dataset)
    elif family == "dataset" and (PINNED_DIR / name / "domain.json").is_file():
        deps[f"domain {name}"] = _version_of("domain", name)
    elif family == "harness":
        deps = {}
    return deps


def _compute(family: str, name: str) -> dict[str, Any]:
    if family == "harness":
        return harness_values()
    if family == "domain":
        return domain_training_values() if name == "training" else domain_values(name)
    if family == "architecture":
        return architecture_values(name)
    if family == "dataset":
        return dataset_values(name)
    return evaluator_values(name)


def compute(family: str, name: str) -> Fingerprint:
    """Run one component's fingerprint (on the CPU, one thread unless set otherwise)."""
    start = time.perf_counter()
    values = _values(_compute(family, name))
    return Fingerprint(
        family,
        name,
        _version_of(family, name),
        values,
        _depends(family, name),
        time.perf_counter() - start,
    )


def path_of(family: str, name: str, root: Path = DEFAULT_DIR) -> Path:
    return Path(root) / family / f"{name}.json"


def load(family: str, name: str, root: Path = DEFAULT_DIR) -> dict[str, Any] | None:
    path = path_of(family, name, root)
    return json.loads(path.read_text()) if path.is_file() else None


def compare(
    stored: dict[str, Any], values: dict[str, Any], rtol: float = RTOL, atol: float = ATOL
) -> list[str]:
    """The values that moved: ``"name: recorded -> now"``, worst first; [] when all agree."""
    moved: list[tuple[float, str]] = []
    for key in sorted(set(stored) | set(values)):
        if key not in stored or key not in values:
            where = "new" if key not in stored else "gone"
            moved.append((math.inf, f"{key}: {where}"))
            continue
        a = np.atleast_1d(np.asarray(stored[key], dtype=np.float64))
        b = np.atleast_1d(np.asarray(values[key], dtype=np.float64))
        if a.shape != b.shape:
            moved.append((math.inf, f"{key}: {a.size} values recorded, {b.size} now"))
            continue
        bad = ~np.isclose(b, a, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            err = np.abs(b - a) / (atol + rtol * np.abs(a))
            i = int(np.nanargmax(np.where(bad, err, -1)))
            shown = f"[{i}] " if a.size > 1 else ""
            moved.append((float(err[i]), f"{key}{shown}: {a[i]:.7g} -> {b[i]:.7g}"))
    return [text for _, text in sorted(moved, key=lambda m: -m[0])]


def source_of(family: str, name: str) -> str:
    """Where to bump the version of a component, for messages."""
    if family == "harness":
        return "SCHEMA_VERSION in bench/run/keys.py"
    if family == "domain":
        return "DOMAIN_VERSION in datasets/domain.py"
    cls = _REGISTRIES[family].get(name)
    found = source_file_hash(cls)
    return f"`version` of {cls.__qualname__} in {found[0] if found else cls.__module__}"


def record_command(family: str, name: str) -> str:
    return f"ganbench fingerprint --record {family}:{name}"


@dataclass
class Verdict:
    """The outcome of checking one component against its recorded fingerprint."""

    family: str
    name: str
    ok: bool
    message: str
    seconds: float = 0.0


def check(
    family: str, name: str, root: Path = DEFAULT_DIR, now: Fingerprint | None = None
) -> Verdict:
    """Compare one component with its recorded fingerprint; the message says what to do."""
    now = now or compute(family, name)
    label, fix = f"{family} {name}", record_command(family, name)
    stored = load(family, name, root)
    if stored is None:
        return Verdict(family, name, False, f"{label} has no fingerprint: record it with `{fix}`")
    moved = compare(stored["values"], now.values)
    bumped = stored["version"] != now.version
    deps = {k: v for k, v in now.depends.items() if stored.get("depends", {}).get(k) != v}
    if bumped or deps:
        why = []
        if bumped:
            why.append(f"its version is now {now.version!r}, recorded at {stored['version']!r}")
        why += [f"{k} is now at {v!r}" for k, v in sorted(deps.items())]
        what = "numbers moved" if moved else "numbers unchanged"
        return Verdict(
            family,
            name,
            False,
            f"{label}: {'; '.join(why)} ({what}): re-record its fingerprint with `{fix}`",
            now.seconds,
        )
    if moved:
        shown = "; ".join(moved[:3]) + (f"; and {len(moved) - 3} more" if len(moved) > 3 else "")
        deps = [k for k in now.depends if k != "schema"]
        upstream = (
            f" It runs on {', '.join(deps)}: if their fingerprints fail too, fix those first."
            if deps
            else ""
        )
        return Verdict(
            family,
            name,
            False,
            f"{label} computes different numbers at the same version {now.version!r} ({shown}): "
            f"stored results under its keys would no longer be what the code gives. Bump "
            f"{source_of(family, name)}, then re-record with `{fix}` (if the change is "
            f"meant to keep every number, find what moved them instead).{upstream}",
            now.seconds,
        )
    return Verdict(family, name, True, f"{label}: as recorded", now.seconds)


def record(
    family: str, name: str, root: Path = DEFAULT_DIR, force: bool = False
) -> tuple[Path, str]:
    """Write a component's fingerprint. Numbers that moved while every version stayed as
    recorded are refused unless ``force`` (say, for a new torch that sums differently)."""
    now = compute(family, name)
    stored = load(family, name, root)
    if stored is not None and not force:
        same_versions = stored["version"] == now.version and stored.get("depends") == now.depends
        moved = compare(stored["values"], now.values)
        if same_versions and moved:
            raise GanbenchError(
                f"{family} {name}: numbers moved ({moved[0]}) but no version did: bump "
                f"{source_of(family, name)} first (or pass --force if nothing in the code changed)"
            )
    path = path_of(family, name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(now.as_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path, f"{now.label}: {len(now.values)} values in {now.seconds:.1f} s"


def parse_targets(targets: list[str]) -> list[tuple[str, str]]:
    """``family:name`` or a bare name (looked up in every family); none: every component."""
    if not targets:
        return all_components()
    out = []
    known = all_components()
    for target in targets:
        family, sep, name = target.partition(":")
        if sep:
            if (family, name) not in known:
                raise GanbenchError(f"no built-in component {target!r} (e.g. architecture:dcgan)")
            out.append((family, name))
            continue
        hits = [(f, n) for f, n in known if n == target]
        if not hits:
            raise GanbenchError(
                f"no built-in component named {target!r}; use FAMILY:NAME with a family of "
                f"{', '.join(FAMILIES)}"
            )
        out.extend(hits)
    return out


def on_one_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with one torch thread (the fingerprints are tiny; threads only add noise)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(saved)
