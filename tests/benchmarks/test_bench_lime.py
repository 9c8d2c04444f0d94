"""LIME on a DCGAN discriminator: ganbench's vectorised LIME vs captum's Lime on the same samples.

Both explain the same 8 digits with the same 500 pre-drawn perturbations of 64 patches
(4x4 on 32x32), the same cosine exponential kernel and the same ridge model, so they give
the same attributions (each test asserts it). Captum explains one image at a time, building
each perturbation in Python and running ``perturbations_per_eval`` of them per forward;
it is timed at 64, 256 and 500 (= n_samples: one forward per image, its fastest). Ours runs
all 8 x 500 perturbations in chunks of 1024 (the default) or 4096: on CPU, smaller chunks can
be faster, since activation buffers over glibc's mmap threshold (32 MiB at most by default;
a 4096-batch first activation here is 128 MiB) are freshly mapped and page-faulted on every
call.
`make bench` prints them in one table (group "lime"); each test also records its seconds
per image in ``extra_info`` (and prints it with ``-s``). On CUDA when available.
"""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from ganbench.core.registry import create_architecture, create_dataset
from ganbench.explainers._lime import (
    captum_lime_attributions,
    lime_attributions,
    patch_feature_mask,
    sample_lime_masks,
)
from ganbench.run.numerics import prepare_cpu

IMAGES = 8
SAMPLES = 500
PATCH = 4  # 64 features on 32x32
WIDTH = 32
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module")
def setup():
    """(forward, inputs, baselines, feature_mask, masks): a DCGAN discriminator after 20 steps
    on digits, in eval mode, and what it explains."""
    prepare_cpu()
    dataset = create_dataset("digits")
    images = dataset.split("train").images
    torch.manual_seed(0)
    arch = create_architecture("dcgan", dataset.spec, width=WIDTH)
    for step in range(20):
        arch.train_step(images[step * 32 : (step + 1) * 32])
    arch.eval()
    D = arch.discriminator.to(DEVICE)
    inputs = images[-IMAGES:].to(DEVICE)
    feature_mask = patch_feature_mask(1, 32, PATCH)
    n_features = int(feature_mask.max()) + 1
    masks = sample_lime_masks(IMAGES, n_features, SAMPLES, torch.Generator().manual_seed(1))
    return D, inputs, torch.zeros_like(inputs), feature_mask.to(DEVICE), masks


def synced(fn):
    def run():
        out = fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def coefficients(attributions: torch.Tensor) -> torch.Tensor:
    """(n, F) coefficients: the value at each patch's top-left pixel."""
    return attributions[:, 0, ::PATCH, ::PATCH].reshape(len(attributions), -1).cpu()


def assert_agree(a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = coefficients(a), coefficients(b)
    rho = min(spearmanr(a[i], b[i]).statistic for i in range(len(a)))
    assert rho >= 0.95, rho
    # on CUDA, TF32 convolutions at different batch sizes differ by more than float32 rounding
    tolerance = 1e-4 if DEVICE.type == "cpu" else 1e-2
    assert (a - b).abs().max() <= tolerance * b.abs().max()


def report(benchmark, name: str) -> None:
    if benchmark.stats:  # None under --benchmark-disable
        per_image = benchmark.stats.stats.mean / IMAGES
        benchmark.extra_info["s_per_image"] = per_image
        print(f"\n{name}: {per_image:.4f} s/image on {DEVICE.type}")


@pytest.mark.benchmark(group="lime")
@pytest.mark.parametrize("chunk", [1024, 4096])
def test_bench_lime_vectorised(benchmark, setup, chunk):
    D, inputs, baselines, feature_mask, masks = setup
    ours = benchmark.pedantic(
        synced(lambda: lime_attributions(D, inputs, baselines, feature_mask, masks, chunk=chunk)),
        rounds=5,
        warmup_rounds=1,
    )
    report(benchmark, f"ganbench lime_attributions, chunk={chunk}")
    reference = captum_lime_attributions(
        D, inputs, baselines, feature_mask, masks, perturbations_per_eval=SAMPLES
    )
    assert_agree(ours, reference)


@pytest.mark.benchmark(group="lime")
@pytest.mark.parametrize("per_eval", [64, 256, SAMPLES])
def test_bench_captum_lime_reference(benchmark, setup, per_eval):
    D, inputs, baselines, feature_mask, masks = setup
    reference = benchmark.pedantic(
        synced(
            lambda: captum_lime_attributions(
                D, inputs, baselines, feature_mask, masks, perturbations_per_eval=per_eval
            )
        ),
        rounds=3,
        warmup_rounds=1,
    )
    report(benchmark, f"captum Lime, perturbations_per_eval={per_eval}")
    assert_agree(lime_attributions(D, inputs, baselines, feature_mask, masks), reference)
