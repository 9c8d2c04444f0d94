"""Two-sample metrics (MMD, C2ST): plain references, calibration under H0, power, evaluators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import beta

import ganbench.metrics.mmd as mmd_module
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import create_dataset, create_metric
from ganbench.metrics.c2st import c2st
from ganbench.metrics.mmd import (
    gaussian_kernel_matrix,
    median_heuristic,
    mmd2_unbiased,
    mmd_permutation_test,
    permuted_mmd2,
    squared_distances,
)

ALPHA = 0.05
MAX_FALSE_REJECTION_RATE = 0.125  # the nominal 0.05 plus room for Monte Carlo noise
MIN_POWER = 0.9
# About 0.3 s per C2ST on one CPU thread (early stopping: patience 3); lr and batch size are the
# metric's defaults.
C2ST_FAST = {"width": 8, "epochs": 10, "patience": 3, "batch_size": 64, "lr": 2e-4}
C2ST_N = 80


@pytest.fixture(scope="module")
def digits_train() -> torch.Tensor:
    """The 1438 digits training images, (N, 1, 32, 32) in [-1, 1]."""
    return create_dataset("digits").split("train").images


pytestmark = pytest.mark.usefixtures("one_thread")


def disjoint_halves(images: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random samples of ``n`` images: a real-vs-real pair, H0 true by construction."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:n]], images[order[n : 2 * n]]


def darkened(images: torch.Tensor) -> torch.Tensor:
    """A clear distribution shift: every pixel 0.3 darker, clamped to the valid range."""
    return (images - 0.3).clamp(-1, 1)


def rejection_rate(p_values: list[float]) -> float:
    """Share of the p-values below ALPHA."""
    return float(np.mean(np.array(p_values) < ALPHA))


def reference_mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD² written as the textbook double sums over pairs."""

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


# --- MMD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_points", [6, 21])  # 15 pairs (odd count) and 210 pairs (even count)
def test_median_heuristic_is_the_median_pairwise_distance(n_points):
    points = torch.randn(
        n_points, 4, generator=torch.Generator().manual_seed(n_points), dtype=torch.float64
    )
    expected = float(np.median(pdist(points.numpy())))
    assert median_heuristic(squared_distances(points)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n_x", "n_y"), [(10, 10), (12, 7), (5, 16)])
def test_pooled_kernel_mmd2_matches_double_loop(n_x, n_y):
    g = torch.Generator().manual_seed(n_x * 100 + n_y)
    x = torch.randn(n_x, 6, generator=g, dtype=torch.float64)
    y = torch.randn(n_y, 6, generator=g, dtype=torch.float64) + 0.5
    sq = squared_distances(torch.cat([x, y]))
    bandwidth = median_heuristic(sq)
    kernel = gaussian_kernel_matrix(sq, bandwidth)
    assert mmd2_unbiased(kernel, n_x) == pytest.approx(reference_mmd2(x, y, bandwidth), abs=1e-6)


def test_permuted_mmd2_matches_recomputation_on_permuted_samples():
    g = torch.Generator().manual_seed(3)
    pooled = torch.cat(
        [torch.randn(9, 5, generator=g), torch.randn(13, 5, generator=g) + 1]
    ).double()
    n_x = 9
    sq = squared_distances(pooled)
    bandwidth = median_heuristic(sq)
    kernel = gaussian_kernel_matrix(sq, bandwidth)
    orders = torch.stack([torch.randperm(len(pooled), generator=g) for _ in range(4)])
    permuted = permuted_mmd2(kernel, n_x, orders)
    for order, statistic in zip(orders, permuted, strict=True):
        expected = reference_mmd2(pooled[order[:n_x]], pooled[order[n_x:]], bandwidth)
        assert float(statistic) == pytest.approx(expected, abs=1e-6)


def test_mmd_p_value_is_a_seeded_permutation_count_independent_of_chunking(
    digits_train, monkeypatch
):
    x, y = disjoint_halves(digits_train, 40, seed=0)
    result = mmd_permutation_test(x, y, permutations=99, seed=1)
    assert result == mmd_permutation_test(x, y, permutations=99, seed=1)
    p_times_draws = result["mmd_p_value"] * 100  # (1 + count) / (1 + B) with B = 99
    assert p_times_draws == pytest.approx(round(p_times_draws)) and 1 <= round(p_times_draws) <= 100
    monkeypatch.setattr(mmd_module, "PERMUTATION_CHUNK_ELEMENTS", 7 * 80)  # 7 permutations a chunk
    assert mmd_permutation_test(x, y, permutations=99, seed=1) == result


def test_mmd_rejects_real_vs_real_at_most_at_nominal_rate(digits_train):
    p_values = [
        mmd_permutation_test(
            *disjoint_halves(digits_train, 100, seed), permutations=200, seed=seed
        )["mmd_p_value"]
        for seed in range(100)
    ]
    assert rejection_rate(p_values) <= MAX_FALSE_REJECTION_RATE


def test_mmd_detects_darkened_images(digits_train):
    p_values = []
    for seed in range(10_000, 10_040):
        real, other = disjoint_halves(digits_train, 100, seed)
        p_values.append(
            mmd_permutation_test(real, darkened(other), permutations=200, seed=seed)["mmd_p_value"]
        )
    assert rejection_rate(p_values) >= MIN_POWER


# --- C2ST --------------------------------------------------------------------------------------


def test_c2st_rejects_real_vs_real_at_most_at_nominal_rate(digits_train):
    p_values = [
        c2st(*disjoint_halves(digits_train, C2ST_N, seed), seed=seed, **C2ST_FAST)["c2st_p_value"]
        for seed in range(100)
    ]
    assert rejection_rate(p_values) <= MAX_FALSE_REJECTION_RATE


def test_c2st_detects_darkened_images(digits_train):
    p_values = []
    for seed in range(10_000, 10_040):
        real, other = disjoint_halves(digits_train, C2ST_N, seed)
        p_values.append(c2st(real, darkened(other), seed=seed, **C2ST_FAST)["c2st_p_value"])
    assert rejection_rate(p_values) >= MIN_POWER


def test_c2st_separates_real_from_uniform_noise(digits_train):
    real, _ = disjoint_halves(digits_train, C2ST_N, seed=0)
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    result = c2st(real, noise, seed=0, **C2ST_FAST)
    assert result["c2st_accuracy"] >= 0.95
    assert result["c2st_p_value"] < 1e-15
    assert result["c2st_n"] == C2ST_N and result["c2st_n_test"] == C2ST_N  # half of 2n held out


@pytest.mark.parametrize("shift", [False, True])
def test_c2st_interval_is_two_sided_clopper_pearson_and_p_value_the_upper_binomial_tail(
    digits_train, shift
):
    real, other = disjoint_halves(digits_train, C2ST_N, seed=1)
    result = c2st(real, darkened(other) if shift else other, seed=1, **C2ST_FAST)
    n_test = int(result["c2st_n_test"])
    n_correct = round(result["c2st_accuracy"] * n_test)
    assert result["c2st_ci_low"] <= result["c2st_accuracy"] <= result["c2st_ci_high"]
    low = beta.ppf(0.025, n_correct, n_test - n_correct + 1) if n_correct > 0 else 0.0
    high = beta.ppf(0.975, n_correct + 1, n_test - n_correct) if n_correct < n_test else 1.0
    assert result["c2st_ci_low"] == pytest.approx(low, abs=1e-9)
    assert result["c2st_ci_high"] == pytest.approx(high, abs=1e-9)
    upper_tail = sum(math.comb(n_test, k) for k in range(n_correct, n_test + 1)) / 2**n_test
    assert result["c2st_p_value"] == pytest.approx(upper_tail, rel=1e-9)


def test_c2st_is_deterministic_and_leaves_global_rng_alone(digits_train):
    real, other = disjoint_halves(digits_train, C2ST_N, seed=2)
    rng_state = torch.get_rng_state()
    first = c2st(real, darkened(other), seed=5, **C2ST_FAST)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert c2st(real, darkened(other), seed=5, **C2ST_FAST) == first


def test_c2st_refuses_samples_of_different_sizes(digits_train):
    real, other = disjoint_halves(digits_train, C2ST_N, seed=0)
    with pytest.raises(ValueError, match="equally shaped"):
        c2st(real, other[:-1], seed=0, **C2ST_FAST)


# --- registered evaluators ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n_key"), [("c2st", "c2st_n"), ("mmd", "mmd_n")])
def test_evaluator_returns_its_declared_finite_scores_with_n_capped_at_the_test_split(
    name, n_key, tmp_path
):
    ctx = EvalContext(
        model=None,
        dataset=create_dataset("digits"),
        device=torch.device("cpu"),
        seed=0,
        artifact_dir=tmp_path,
    )
    metric = create_metric(name, n=1000)
    scores = evaluate_and_write(metric, ctx)
    assert set(scores) == {score.name for score in type(metric).scores}
    assert all(isinstance(value, float) and math.isfinite(value) for value in scores.values())
    assert scores[n_key] == len(ctx.dataset.split("test")) == 359
