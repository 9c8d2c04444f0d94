"""Domain networks: a small CNN per dataset, the feature space every device scores in.

One network serves three readers: its penultimate features are the feature space of
FID/KID/precision–recall (registered with torch-fidelity, whose own code computes the
metrics), its class head labels generated images (InfoGAN code accuracy, per-class
dissection concepts), and its factor heads read the factors of generated shapes
(direction–factor alignment).

The built-in datasets ship their networks, pinned: ``ganbench train-domain NAME`` trained
them once and wrote ``weights/NAME/`` (safetensors and a description), and evaluations
only load them. An evaluation key names its network by the sha256 of the weights, so two
machines score in the same features or have different keys. A dataset without a pinned
network (a user's own data) trains one in a ``domain`` trial, on the CPU with a fixed
seed, and its evaluations are keyed by the sha256 of the weights that trial produced.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganbench.checkpoint import load_tensors, save_tensors
from ganbench.errors import CheckpointError, GanbenchError
from ganbench.keys import SCHEMA_VERSION, part_of, trial_key
from ganbench.registry import create_dataset, get_dataset

DOMAIN_VERSION = "1"
WEIGHTS = "domain.safetensors"
META = "domain.json"
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 128,
    "lr": 2e-3,
    "width": 16,
    "shift": 0,  # random translation (pixels) for augmentation
    "seed": 0,
}


@dataclass(frozen=True)
class Head:
    """One output of the network: categorical with ``levels`` classes, or a regression (0)."""

    name: str
    levels: int


def heads_for(spec) -> list[Head]:
    """Factors when the dataset has them (shapes: shape, colour, x, y, ...), else its labels."""
    if spec.factors:
        return [Head(n, k) for n, k in zip(spec.factors, spec.factor_levels, strict=True)]
    if spec.num_classes:
        return [Head("label", spec.num_classes)]
    raise GanbenchError(f"dataset {spec.name!r} has neither labels nor factors: no domain network")


class DomainNetwork(nn.Module):
    """Three conv stages (width, 2w, 4w) with batch norm, global average pooling, linear heads.

    ``features`` (4w values) is the embedding the metrics use; ``forward`` returns a dict of
    head outputs: logits for categorical heads, standardised values for regressions.
    """

    def __init__(self, channels: int, heads: list[Head], width: int = 32, class_head: str = ""):
        super().__init__()

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]

        self.trunk = nn.Sequential(
            *stage(channels, width),
            nn.MaxPool2d(2),
            *stage(width, 2 * width),
            nn.MaxPool2d(2),
            *stage(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.heads_spec = list(heads)
        self.heads = nn.ModuleDict({h.name: nn.Linear(4 * width, max(h.levels, 1)) for h in heads})
        self.feature_dim = 4 * width
        # regression targets are standardised for training; predictions are mapped back
        self.register_buffer("target_mean", torch.zeros(len(heads)))
        self.register_buffer("target_std", torch.ones(len(heads)))
        categorical = [h.name for h in heads if h.levels > 0]
        self.class_head = class_head or (categorical[0] if categorical else "")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {name: head(f) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Class indices for categorical heads, values in data units for regressions."""
        outs: dict[str, list[torch.Tensor]] = {h.name: [] for h in self.heads_spec}
        for start in range(0, len(x), batch_size):
            raw = self(x[start : start + batch_size])
            for i, h in enumerate(self.heads_spec):
                if h.levels > 0:
                    outs[h.name].append(raw[h.name].argmax(1))
                else:
                    v = raw[h.name][:, 0] * self.target_std[i] + self.target_mean[i]
                    outs[h.name].append(v)
        return {k: torch.cat(v) for k, v in outs.items()}

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The class head's label per image (digits: the digit; shapes: the shape)."""
        return self.predict(x)[self.class_head]

    @torch.no_grad()
    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.class_head](self.features(x))


def _targets(images_split, heads: list[Head]) -> torch.Tensor:
    """(N, len(heads)) float targets from factors (when present) or labels."""
    factors = images_split.extras.get("factors")
    if factors is not None:
        return factors.float()
    return images_split.labels.float().unsqueeze(1)


def _shift(x: torch.Tensor, pixels: int, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pixels`` in each direction, padding by edge replication."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    off = torch.randint(0, 2 * pixels + 1, (2,), generator=g).tolist()  # one shift per batch
    return padded[:, :, off[0] : off[0] + h, off[1] : off[1] + w]


def evaluate_network(net: DomainNetwork, split) -> dict[str, float]:
    """Held-out accuracy of each categorical head and R² of each regression."""
    net.eval()
    pred = net.predict(split.images)
    target = _targets(split, net.heads_spec)
    out = {}
    for i, h in enumerate(net.heads_spec):
        t = target[:, i]
        if h.levels > 0:
            out[f"accuracy_{h.name}"] = (pred[h.name] == t.long()).float().mean().item()
        else:
            resid = ((pred[h.name] - t) ** 2).sum()
            total = ((t - t.mean()) ** 2).sum().clamp_min(1e-12)
            out[f"r2_{h.name}"] = (1 - resid / total).item()
    return out


def train_domain_network(
    dataset, params: dict[str, Any] | None = None, progress: bool = False
) -> tuple[DomainNetwork, dict[str, float]]:
    """Train on the dataset's training split (CPU, seeded) and score on its test split."""
    from tqdm.auto import tqdm

    p = {**TRAINING_DEFAULTS, **dataset.domain_training, **(params or {})}
    spec = dataset.spec
    heads = heads_for(spec)
    torch.manual_seed(p["seed"])
    g = torch.Generator().manual_seed(p["seed"])
    train = dataset.split("train")
    x, y = train.images, _targets(train, heads)
    net = DomainNetwork(spec.channels, heads, p["width"])
    regress = [i for i, h in enumerate(heads) if h.levels == 0]
    if regress:
        net.target_mean[regress] = y[:, regress].mean(0)
        net.target_std[regress] = y[:, regress].std(0).clamp_min(1e-6)
    steps_per_epoch = max(1, math.ceil(len(x) / p["batch_size"]))
    total = p["epochs"] * steps_per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p["lr"], total_steps=total)
    net.train()
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"domain network {spec.name}", disable=not progress, leave=False)
    for _ in range(p["epochs"]):
        order = torch.randperm(len(x), generator=g)
        for b in range(steps_per_epoch):
            idx = order[b * p["batch_size"] : (b + 1) * p["batch_size"]]
            out = net(_shift(x[idx], p["shift"], g))
            loss = torch.zeros(())
            for i, h in enumerate(heads):
                t = y[idx, i]
                if h.levels > 0:
                    loss = loss + F.cross_entropy(out[h.name], t.long())
                else:
                    z = (t - net.target_mean[i]) / net.target_std[i]
                    loss = loss + F.mse_loss(out[h.name][:, 0], z)
            if not torch.isfinite(loss):
                raise GanbenchError(f"domain network of {spec.name}: loss became non-finite")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    net.eval()
    metrics = evaluate_network(net, dataset.split("test"))
    metrics["train_s"] = seconds
    return net, metrics


# --- pinned networks, the domain trial, artifacts ----------------------------------------------
PINNED_DIR = Path(__file__).resolve().parent / "weights"


def weights_sha256(path: Path) -> str:
    """The sha256 of a weights file: the name an evaluation key gives its domain network."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Pinned:
    """A shipped domain network: ``path`` holds ``domain.safetensors`` and ``domain.json``."""

    path: Path
    sha256: str
    meta: dict[str, Any]


def pinned_network(dataset_name: str, dataset_params: dict[str, Any]) -> Pinned | None:
    """The shipped network of a dataset, when one was trained for exactly these parameters.

    ``ganbench train-domain NAME`` writes it to ``datasets/weights/NAME/``; its description
    names the dataset part (name, version, resolved parameters) it was trained on, so a
    dataset with other parameters (say shapes at 64x64) trains its own network instead.
    """
    where = PINNED_DIR / dataset_name
    if not (where / META).is_file():
        return None
    meta = json.loads((where / META).read_text())
    cls = get_dataset(dataset_name)
    params = cls(**dataset_params).params
    if meta.get("dataset") != part_of(cls, params):
        return None
    return Pinned(where, meta["sha256"], meta)


def domain_ref(weights_sha256: str | None = None, trial: str | None = None) -> dict[str, Any]:
    """What an evaluation key holds of its domain network: the network code's version and the
    sha256 of its weights, or, before a trained network exists, the key of the trial that
    trains it (a provisional key: the runner re-keys the evaluation once the weights exist)."""
    ref: dict[str, Any] = {"version": DOMAIN_VERSION}
    if weights_sha256:
        ref["weights"] = weights_sha256
    else:
        ref["trial"] = trial
    return ref


def domain_config(dataset_name: str, dataset_params: dict[str, Any]) -> dict[str, Any]:
    """The config of the trial that trains a dataset's domain network (datasets without a
    pinned network: a user's own data); its sha256 keys the trial, and the evaluations that
    read the network are keyed by the resulting weights' sha256."""
    cls = get_dataset(dataset_name)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "domain",
        "dataset": part_of(cls, cls(**dataset_params).params),
        "network": {
            "version": DOMAIN_VERSION,
            "params": {**TRAINING_DEFAULTS, **cls.domain_training},
        },
    }


def save_domain_network(
    net: DomainNetwork, dataset, artifact_dir: Path, extra: dict[str, Any] | None = None
) -> str:
    """Write ``domain.safetensors`` and ``domain.json`` into ``artifact_dir`` atomically;
    returns the weights' sha256."""
    artifact_dir = Path(artifact_dir)
    tmp = artifact_dir.with_name(f"{artifact_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(net.state_dict(), tmp / WEIGHTS)
    sha = weights_sha256(tmp / WEIGHTS)
    meta = {
        "channels": dataset.spec.channels,
        "width": net.feature_dim // 4,
        "heads": [asdict(h) for h in net.heads_spec],
        "class_head": net.class_head,
        "sha256": sha,
        **(extra or {}),
    }
    (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(artifact_dir, ignore_errors=True)
    os.replace(tmp, artifact_dir)
    return sha


def run_domain(config: dict[str, Any], artifact_dir: Path, progress: bool = False) -> dict:
    """Train and save one domain network (the body of a ``domain`` trial)."""
    ds = config["dataset"]
    dataset = create_dataset(ds["name"], **ds["params"])
    net, metrics = train_domain_network(dataset, config["network"]["params"], progress)
    seconds = metrics.pop("train_s")
    sha = save_domain_network(net, dataset, artifact_dir, {"dataset": ds, "metrics": metrics})
    return {"scores": metrics, "timings": {"train_s": seconds}, "outputs": {"weights_sha256": sha}}


def load_domain_network(
    artifact_dir: Path, device: torch.device | str = "cpu", sha256: str | None = None
) -> DomainNetwork:
    """The network saved in ``artifact_dir``; with ``sha256``, its weights must have that hash
    (the one the evaluation's key names)."""
    artifact_dir = Path(artifact_dir)
    try:
        meta = json.loads((artifact_dir / META).read_text())
        heads = [Head(**h) for h in meta["heads"]]
        net = DomainNetwork(meta["channels"], heads, meta["width"], meta["class_head"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"domain network at {artifact_dir} is unreadable ({exc}); delete that folder to retrain it"
        ) from None
    if sha256 is not None and (artifact_dir / WEIGHTS).is_file():
        found = weights_sha256(artifact_dir / WEIGHTS)
        if found != sha256:
            raise CheckpointError(
                f"domain network {artifact_dir / WEIGHTS} has sha256 {found[:12]}, but the "
                f"evaluation's key names {sha256[:12]}: restore the file (git checkout, or "
                "delete that folder to retrain it) and rerun"
            )
    try:
        net.load_state_dict(load_tensors(artifact_dir / WEIGHTS, where="domain network"))
    except RuntimeError as exc:
        raise CheckpointError(
            f"domain network at {artifact_dir} does not fit its description ({str(exc).splitlines()[0]}); "
            "delete that folder to retrain it"
        ) from None
    return net.to(device).eval()


def domain_network(
    dataset_name: str,
    dataset_params: dict[str, Any] | None = None,
    cache_root: Path | str = Path("runs") / "artifacts",
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> DomainNetwork:
    """The domain network of a dataset: the pinned one when it ships, else trained once and
    cached under ``cache_root/<domain trial key>/`` (for code outside a matrix: tests,
    notebooks; the runner trains it as a ``domain`` trial)."""
    pinned = pinned_network(dataset_name, dataset_params or {})
    if pinned is not None:
        return load_domain_network(pinned.path, device, pinned.sha256)
    config = domain_config(dataset_name, dataset_params or {})
    where = Path(cache_root) / trial_key(config)
    if not (where / WEIGHTS).exists():
        run_domain(config, where, progress)
    return load_domain_network(where, device)


def train_pinned(
    dataset_name: str,
    dataset_params: dict[str, Any] | None = None,
    out: Path = PINNED_DIR,
    threads: int = 1,
    progress: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Train a dataset's domain network as the shipped, pinned one (``ganbench train-domain``).

    Trains on the CPU with ``threads`` torch threads (a given CPU and thread count give the
    same weights again); writes ``out/NAME/domain.safetensors`` and ``domain.json`` (the
    dataset part it was trained for, its held-out scores, how it was made, the sha256)."""
    import platform

    cls = get_dataset(dataset_name)
    dataset = cls(**(dataset_params or {}))
    params = {**TRAINING_DEFAULTS, **cls.domain_training}
    saved = torch.get_num_threads()
    torch.set_flush_denormal(True)  # as every trial trains (ganbench.execute.prepare_cpu)
    torch.set_num_threads(threads)
    try:
        net, metrics = train_domain_network(dataset, params, progress)
    finally:
        torch.set_num_threads(saved)
    seconds = metrics.pop("train_s")
    extra = {
        "dataset": part_of(cls, dataset.params),
        "network": {"version": DOMAIN_VERSION, "params": params},
        "metrics": metrics,
        "trained": {
            "command": f"ganbench train-domain {dataset_name}",
            "torch": torch.__version__,
            "threads": threads,
            "machine": platform.machine(),
            "seconds": round(seconds, 1),
        },
    }
    where = Path(out) / dataset_name
    sha = save_domain_network(net, dataset, where, extra)
    return where, {**extra, "sha256": sha}


# --- torch-fidelity ----------------------------------------------------------------------------
FIDELITY_EXTRACTOR = "ganbench-domain"


def register_with_torch_fidelity() -> str:
    """Register the domain network as a torch-fidelity feature extractor (once); returns its name.

    torch-fidelity builds the extractor itself and passes every keyword of
    ``calculate_metrics`` to it: ours reads the network from ``ganbench_domain_network``.
    Inputs are uint8 images (N, C, H, W) as torch-fidelity hands them over; features are
    ``features`` (the penultimate embedding: FID, KID, precision/recall) and ``logits``
    (the class head: the Inception Score computed with the domain classifier).
    """
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FIDELITY_EXTRACTOR in FEATURE_EXTRACTORS_REGISTRY:
        return FIDELITY_EXTRACTOR

    class DomainFeatureExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, ganbench_domain_network=None, **kwargs):
            super().__init__(name, features_list)
            if ganbench_domain_network is None:
                raise GanbenchError(
                    f"{name}: pass the network as calculate_metrics(..., ganbench_domain_network=net)"
                )
            self.net = ganbench_domain_network

        @staticmethod
        def get_provided_features_list():
            return ("features", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits"}.get(metric, "features")

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            dtype = next(self.net.parameters()).dtype  # float32, or float64 in fingerprints
            x = x.to(dtype) / 127.5 - 1 if x.dtype == torch.uint8 else x.to(dtype)
            f = self.net.features(x)
            out = {"features": f, "logits": self.net.heads[self.net.class_head](f)}
            return tuple(out[name] for name in self.features_list)

    register_feature_extractor(FIDELITY_EXTRACTOR, DomainFeatureExtractor)
    return FIDELITY_EXTRACTOR
