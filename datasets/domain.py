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

from ganbench.core.checkpoint import load_tensors, save_tensors
from ganbench.core.errors import CheckpointError, GanbenchError

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
