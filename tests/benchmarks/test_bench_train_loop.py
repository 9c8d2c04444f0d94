"""Harness overhead: ganbench's training loop vs a bare PyTorch loop of the same DCGAN and batch.

Both train the same networks on the same digits for the same number of steps; the
difference is what the harness adds (seeded batching, windowed timing, NaN checks,
loss logging). `make bench` prints them in one table (group "train-loop"), with the
harness under the ``[train]`` switches beside them: ``compile = "default"`` (and
``"reduce-overhead"``, CUDA graphs, on a GPU) and ``precision = "bf16"``; each prints its
speed-up over the eager fp32 harness. On a GPU the same file runs on CUDA.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganbench.core.registry import create_architecture, create_dataset
from ganbench.core.timing import synchronize
from ganbench.run.numerics import prepare_cpu
from ganbench.run.train_loop import train_model

STEPS = 50
BATCH = 64
WIDTH = 32
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
_MEANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def images():
    prepare_cpu()
    return create_dataset("digits").split("train").images.to(DEVICE)


def fresh_dcgan():
    torch.manual_seed(0)
    return create_architecture("dcgan", create_dataset("digits").spec, width=WIDTH).to(DEVICE)


def bare_loop(arch, images: torch.Tensor, steps: int) -> None:
    """The pytorch/examples dcgan/main.py loop, with nothing else."""
    G, D = arch.generator, arch.discriminator
    opt_g, opt_d = arch.opt_g, arch.opt_d
    bce = nn.BCEWithLogitsLoss()
    ones = torch.ones(BATCH, device=DEVICE)
    zeros = torch.zeros(BATCH, device=DEVICE)
    step = 0
    while step < steps:
        order = torch.randperm(images.shape[0], device=DEVICE)
        for start in range(0, images.shape[0] - BATCH + 1, BATCH):
            real = images[order[start : start + BATCH]]
            fake = G(torch.randn(BATCH, arch.latent_dim, device=DEVICE))
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
                synchronize(DEVICE)
                return


def _harness(benchmark, request, images, **switches) -> None:
    arch = fresh_dcgan()
    benchmark.pedantic(
        lambda: train_model(arch, images, STEPS, BATCH, 0, DEVICE, log_every=25, **switches),
        rounds=5,
        warmup_rounds=1,  # the first round compiles, where compile is on
    )
    name = request.node.name
    _MEANS[name] = benchmark.stats.stats.mean
    eager = _MEANS.get("test_bench_ganbench_train_loop")
    if switches and eager:
        speedup = eager / benchmark.stats.stats.mean
        benchmark.extra_info["speedup_vs_eager_fp32"] = round(speedup, 3)
        with request.getfixturevalue("capsys").disabled():
            print(f"\n{name} on {DEVICE.type}: {speedup:.2f}x the eager fp32 harness")


@pytest.mark.benchmark(group="train-loop")
def test_bench_ganbench_train_loop(benchmark, request, images):
    _harness(benchmark, request, images)


@pytest.mark.benchmark(group="train-loop")
def test_bench_bare_pytorch_loop_reference(benchmark, request, images):
    arch = fresh_dcgan()
    benchmark.pedantic(lambda: bare_loop(arch, images, STEPS), rounds=5, warmup_rounds=1)
    harness = _MEANS.get("test_bench_ganbench_train_loop")
    if harness:
        overhead = harness / benchmark.stats.stats.mean - 1
        benchmark.extra_info["harness_overhead"] = round(overhead, 4)
        with request.getfixturevalue("capsys").disabled():
            print(f"\nharness overhead on {DEVICE.type}: {100 * overhead:+.1f}% (mean per run)")


@pytest.mark.benchmark(group="train-loop")
def test_bench_ganbench_train_loop_compiled(benchmark, request, images):
    _harness(benchmark, request, images, compile="default")


@pytest.mark.benchmark(group="train-loop")
@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs: a GPU only")
def test_bench_ganbench_train_loop_cuda_graphs(benchmark, request, images):
    _harness(benchmark, request, images, compile="reduce-overhead")


@pytest.mark.benchmark(group="train-loop")
def test_bench_ganbench_train_loop_bf16(benchmark, request, images):
    _harness(benchmark, request, images, precision="bf16")
