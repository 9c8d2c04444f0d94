"""The ``domain`` kind: which domain network an evaluation reads, and the trial (its config and
its body) that trains one for a dataset that ships none (the network itself, its training and
its files are ``ganbench.datasets.domain``)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganbench.core.registry import create_dataset, get_dataset
from ganbench.datasets import domain as shipped
from ganbench.datasets.domain import (
    DOMAIN_VERSION,
    META,
    PINNED_DIR,
    TRAINING_DEFAULTS,
    WEIGHTS,
    DomainNetwork,
    load_domain_network,
    save_domain_network,
    train_domain_network,
)
from ganbench.run.keys import SCHEMA_VERSION, part_of, trial_key
from ganbench.run.layout import DEFAULT_ARTIFACTS
from ganbench.run.numerics import prepare_cpu


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
    where = shipped.PINNED_DIR / dataset_name  # read when called: tests point it elsewhere
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


def run_domain(config: dict[str, Any], artifact_dir: Path, progress: bool = False) -> dict:
    """Train and save one domain network (the body of a ``domain`` trial)."""
    ds = config["dataset"]
    dataset = create_dataset(ds["name"], **ds["params"])
    net, metrics = train_domain_network(dataset, config["network"]["params"], progress)
    seconds = metrics.pop("train_s")
    sha = save_domain_network(net, dataset, artifact_dir, {"dataset": ds, "metrics": metrics})
    return {"scores": metrics, "timings": {"train_s": seconds}, "outputs": {"weights_sha256": sha}}


def domain_network(
    dataset_name: str,
    dataset_params: dict[str, Any] | None = None,
    cache_root: Path | str = DEFAULT_ARTIFACTS,
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
    cls = get_dataset(dataset_name)
    dataset = cls(**(dataset_params or {}))
    params = {**TRAINING_DEFAULTS, **cls.domain_training}
    saved = torch.get_num_threads()
    prepare_cpu()  # as every trial trains
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
