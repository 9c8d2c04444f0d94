"""MMD permutation test: ganbench's pooled-kernel relabelling vs the naive loop that rebuilds
the kernel for every permutation (issue 7: n = 2,000 per side, B = 200, 512-d features).

Both compute the same p-value (asserted on a small case, and on the benchmark's own data for
the observed statistic); `make bench` prints them in one table (group "mmd-permutation").
The naive loop is timed over one round only: it takes tens of seconds on 2 CPU cores.
"""

from __future__ import annotations

import pytest
import torch

from ganbench.metrics.mmd import (
    gaussian_kernel_matrix,
    median_heuristic,
    mmd2_unbiased,
    mmd_permutation_test,
    squared_distances,
)

N = 2000
DIM = 512
PERMUTATIONS = 200


@pytest.fixture(scope="module")
def samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=g)
    y = torch.randn(N, DIM, generator=g) + 0.05  # a small shift
    return x, y


def naive_permutation_test(x: torch.Tensor, y: torch.Tensor, permutations: int, seed: int) -> dict:
    """The textbook loop: every permutation relabels the pooled points and rebuilds the kernel."""
    pooled = torch.cat([x, y]).to(torch.float64)
    sq = squared_distances(pooled)
    bandwidth = median_heuristic(sq)
    observed = mmd2_unbiased(gaussian_kernel_matrix(sq, bandwidth), len(x))
    g = torch.Generator().manual_seed(seed)
    hits = 0
    for _ in range(permutations):
        order = torch.rand(len(pooled), generator=g, dtype=torch.float64).argsort()
        permuted = pooled[order]
        kernel = gaussian_kernel_matrix(squared_distances(permuted), bandwidth)
        hits += mmd2_unbiased(kernel, len(x)) >= observed
    return {"mmd2": observed, "mmd_p_value": (1 + hits) / (1 + permutations)}


def test_naive_loop_agrees_with_the_pooled_kernel():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 8, generator=g), torch.randn(60, 8, generator=g) + 0.3
    ours = mmd_permutation_test(x, y, permutations=99, seed=3)
    naive = naive_permutation_test(x, y, 99, seed=3)
    assert ours["mmd2"] == pytest.approx(naive["mmd2"], rel=1e-9)
    # the same seeded permutations: the same count
    assert ours["mmd_p_value"] == pytest.approx(naive["mmd_p_value"])


@pytest.mark.benchmark(group="mmd-permutation")
def test_bench_mmd_pooled_kernel(benchmark, samples):
    out = benchmark.pedantic(
        mmd_permutation_test,
        args=samples,
        kwargs={"permutations": PERMUTATIONS, "seed": 0},
        rounds=3,
        iterations=1,
    )
    assert 0 < out["mmd_p_value"] <= 1


@pytest.mark.benchmark(group="mmd-permutation")
def test_bench_mmd_naive_loop(benchmark, samples):
    out = benchmark.pedantic(
        naive_permutation_test, args=(*samples, PERMUTATIONS, 0), rounds=1, iterations=1
    )
    ours = mmd_permutation_test(*samples, permutations=PERMUTATIONS, seed=0)
    assert out["mmd2"] == pytest.approx(ours["mmd2"], rel=1e-9)
