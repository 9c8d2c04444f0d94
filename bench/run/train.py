"""The ``train`` kind: its config (an architecture, a dataset, a seed and a budget) and its
body, which trains the architecture and writes the checkpoint, the sample grid and the loss
log into the trial's folder (:mod:`ganbench.run.layout`)."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ganbench.core.checkpoint import count_parameters, save_checkpoint
from ganbench.core.registry import (
    create_architecture,
    create_dataset,
    get_architecture,
    get_dataset,
)
from ganbench.core.timing import synchronize
from ganbench.run.config import NUMERICS_KEYS, TRAIN_DEFAULTS
from ganbench.run.keys import SCHEMA_VERSION, part_of
from ganbench.run.layout import CHECKPOINT, LOSS_LOG, SAMPLE_GRID, partial_dir
from ganbench.run.numerics import numerics, seed_everything
from ganbench.run.train_loop import train_model


def train_config(
    arch: str | dict[str, Any],
    arch_params: dict,
    dataset: str,
    dataset_params: dict,
    seed: int,
    steps: int,
    train: dict[str, Any],
    device_type: str,
) -> dict[str, Any]:
    """A train trial's config. ``arch`` is a registered name, or an architecture part
    (name, version, params) as a stored config holds it, for checking a submission."""
    part = part_of(get_architecture(arch), arch_params) if isinstance(arch, str) else arch
    config = {
        "schema": SCHEMA_VERSION,
        "kind": "train",
        "architecture": part,
        "dataset": part_of(get_dataset(dataset), dataset_params),
        "seed": seed,
        "budget": {"steps": steps, "batch_size": train["batch_size"]},
        "log_every": train["log_every"],
        "grid_size": train["grid_size"],
        "device": device_type,
    }
    # the numerics switches enter the key only when set, so that fp32 eager trials keep the
    # keys they had before the switches existed
    config.update(
        {k: train[k] for k in NUMERICS_KEYS if train.get(k, TRAIN_DEFAULTS[k]) != TRAIN_DEFAULTS[k]}
    )
    return config


def build(config: dict[str, Any]):
    """The dataset and a fresh architecture that a train config describes."""
    dataset = create_dataset(config["dataset"]["name"], **config["dataset"]["params"])
    arch = create_architecture(
        config["architecture"]["name"], dataset.spec, **config["architecture"]["params"]
    )
    return dataset, arch


@torch.no_grad()
def generation_throughput(
    arch, device: torch.device, batch_size: int = 256, repeats: int = 5
) -> float:
    """Generated images per second in eval mode, after one warm-up batch."""
    arch.eval()
    z = arch.sample_latent(batch_size, generator=torch.Generator().manual_seed(0))
    arch.generate(z)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        arch.generate(z)
    synchronize(device)
    return batch_size * repeats / (time.perf_counter() - start)


def save_sample_grid(arch, path: Path, n: int, seed: int) -> None:
    """A square grid of ``n`` samples from fixed latents, as PNG."""
    # imported here only: torchvision takes seconds to import, and most processes that import
    # this module (the driver, a dry run) never write a grid
    from torchvision.utils import save_image

    arch.eval()
    with torch.no_grad():
        z = arch.sample_latent(n, generator=torch.Generator().manual_seed(seed))
        images = arch.generate(z).clamp(-1, 1).cpu()
    save_image(
        images,
        str(path),
        nrow=int(math.ceil(math.sqrt(n))),
        normalize=True,
        value_range=(-1, 1),
        padding=1,
        pad_value=0.5,
    )


def run_train(
    config: dict[str, Any], artifact_dir: Path, device: torch.device, progress: bool
) -> dict[str, Any]:
    """Train one architecture on one dataset; writes checkpoint, sample grid and loss log."""
    seed_everything(config["seed"])
    dataset, arch = build(config)
    tmp = partial_dir(artifact_dir)
    try:
        budget = config["budget"]
        timings = train_model(
            arch,
            dataset.split("train").images,
            budget["steps"],
            budget["batch_size"],
            config["seed"],
            device,
            config["log_every"],
            progress,
            tmp / LOSS_LOG,
            precision=config.get("precision", TRAIN_DEFAULTS["precision"]),
            compile=config.get("compile", TRAIN_DEFAULTS["compile"]),
        )
        scores = {k: timings.pop(k) for k in list(timings) if k.startswith("final_")}
        start = time.perf_counter()
        # the weights' hash: two runs of one key trained bit-identically exactly when these agree
        weights = save_checkpoint(arch, tmp / CHECKPOINT)
        with numerics(device, "fp32"):  # whatever the training precision: the grid in plain fp32
            save_sample_grid(arch, tmp / SAMPLE_GRID, config["grid_size"], config["seed"])
            timings["save_s"] = time.perf_counter() - start
            timings["generate_images_per_s"] = generation_throughput(arch, device)
        timings["params_generator"] = float(count_parameters(arch.generator))
        timings["params_discriminator"] = float(count_parameters(arch.discriminator))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed attempt leaves nothing behind
        raise
    shutil.rmtree(artifact_dir, ignore_errors=True)
    os.replace(tmp, artifact_dir)
    return {"scores": scores, "timings": timings, "outputs": {"weights_sha256": weights}}
