"""Harness overhead: ganbench's training loop vs a bare PyTorch loop of the same DCGAN and batch.

Both train the same networks on the same digits for the same number of steps; the
difference is what the harness adds (seeded batching, windowed timing, NaN checks,
loss logging). `make bench` prints both in one table (group "train-loop").
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganbench.execute import prepare_cpu, train_model
from ganbench.registry import create_architecture, create_dataset

STEPS = 50
BATCH = 64
WIDTH = 32


@pytest.fixture(scope="module")
def images():
    prepare_cpu()
    return create_dataset("digits").split("train").images


def fresh_dcgan():
    torch.manual_seed(0)
    return create_architecture("dcgan", create_dataset("digits").spec, width=WIDTH)


def bare_loop(arch, images: torch.Tensor, steps: int) -> None:
    """The pytorch/examples dcgan/main.py loop, with nothing else."""
    G, D = arch.generator, arch.discriminator
    opt_g, opt_d = arch.opt_g, arch.opt_d
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
    step = 0
    while step < steps:
        order = torch.randperm(images.shape[0])
        for start in range(0, images.shape[0] - BATCH + 1, BATCH):
            real = images[order[start : start + BATCH]]
            fake = G(torch.randn(BATCH, arch.latent_dim))
            opt_d.zero_grad()
            loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = bce(D(fake), ones)
            loss_g.backward()
            opt_g.step()
            step += 1
            if step == steps:
                return


@pytest.mark.benchmark(group="train-loop")
def test_bench_ganbench_train_loop(benchmark, images):
    arch = fresh_dcgan()
    benchmark.pedantic(
        lambda: train_model(arch, images, STEPS, BATCH, 0, torch.device("cpu"), log_every=25),
        rounds=5,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group="train-loop")
def test_bench_bare_pytorch_loop_reference(benchmark, images):
    arch = fresh_dcgan()
    benchmark.pedantic(lambda: bare_loop(arch, images, STEPS), rounds=5, warmup_rounds=1)
