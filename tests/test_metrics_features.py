"""Features once per sample set, MMD with several bandwidths and in domain features, and KID
from torch-fidelity against the suite's own MMD² on the same features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.evaluator import FEATURE_PASSES
from ganbench.core.registry import create_dataset, create_metric
from ganbench.metrics.mmd import (
    MULTI_BANDWIDTHS,
    median_heuristic,
    mmd2_unbiased,
    mmd_permutation_test,
    squared_distances,
)
from tests.conftest import Projection, brief_dcgan, eval_context

ALPHA = 0.05
MAX_FALSE_REJECTION_RATE = 0.125  # as in test_metrics_two_sample: nominal 0.05 + Monte Carlo room
MIN_POWER = 0.9
N_DOMAIN = (
    500  # per side: removing one class of ten moves 10% of the mass (power 0.15 at 80, 0.75 at 300)
)


pytestmark = pytest.mark.usefixtures("one_thread")


# --- one extraction per feature space and sample set ---------------------------------------


class CountingProjection(Projection):
    """The stand-in domain network, counting the images it embeds."""

    def __init__(self, pixels: int, dim: int) -> None:
        super().__init__(pixels, dim)
        self.images = 0

    def features(self, x):
        self.images += len(x)
        return super().features(x)


FEATURE_METRICS = ["knn_c2st", "one_nn", "memorisation", "mmd_domain"]


def run_metrics(model, digits, root, feature_dir, net):
    out = {}
    for name in FEATURE_METRICS:
        ctx = eval_context(model, digits, root / name, domain=net)  # one trial each
        ctx.feature_dir = feature_dir
        out[name] = evaluate_and_write(
            create_metric(name, n=120, **({"permutations": 50} if "mmd" in name else {})), ctx
        )
    return out


def test_one_feature_pass_per_space_and_sample_set_across_trials(tmp_path):
    digits = create_dataset("digits")
    model = brief_dcgan(20).eval()
    net = CountingProjection(32 * 32, 16)
    FEATURE_PASSES.clear()
    cached = run_metrics(model, digits, tmp_path / "a", tmp_path / "features", net)
    # test, generated and training images: each embedded once, by whichever metric asked first
    assert FEATURE_PASSES["domain"] == 3
    assert net.images == 120 + 120 + len(digits.split("train"))
    # a second round of trials reads every feature from the cache files
    run_metrics(model, digits, tmp_path / "b", tmp_path / "features", net)
    assert FEATURE_PASSES["domain"] == 3
    # and the cache changes no number: the same trials without a cache, extracting afresh
    fresh = run_metrics(model, digits, tmp_path / "c", None, CountingProjection(32 * 32, 16))
    assert FEATURE_PASSES["domain"] == 3 + 3 * len(FEATURE_METRICS)
    assert cached == fresh


def test_a_torn_cache_file_is_extracted_again(tmp_path):
    digits = create_dataset("digits")
    model = brief_dcgan(5).eval()
    net = CountingProjection(32 * 32, 8)
    ctx = eval_context(model, digits, tmp_path / "t", domain=net)
    ctx.feature_dir = tmp_path / "features"
    first = ctx.features("domain", "test", 50)
    (tmp_path / "features" / "domain-test-50.pt").write_bytes(b"not a tensor")
    ctx2 = eval_context(model, digits, tmp_path / "t2", domain=net)
    ctx2.feature_dir = tmp_path / "features"
    assert torch.equal(ctx2.features("domain", "test", 50), first)


# --- multi-bandwidth MMD -----------------------------------------------------------------------


def reference_multi_mmd2(x, y, bandwidths):
    """Unbiased MMD² with the mean of Gaussian kernels, as the textbook double sums."""

    def k(a, b):
        d = float(((a - b) ** 2).sum())
        return sum(math.exp(-d / (2 * s**2)) for s in bandwidths) / len(bandwidths)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_multi_bandwidth_mmd2_matches_the_double_loop():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    y = torch.randn(7, 5, generator=g, dtype=torch.float64) + 0.4
    out = mmd_permutation_test(x, y, permutations=9, seed=0, bandwidth_multipliers=MULTI_BANDWIDTHS)
    sigma = median_heuristic(squared_distances(torch.cat([x, y])))
    expected = reference_multi_mmd2(x, y, [m * sigma for m in MULTI_BANDWIDTHS])
    assert out["mmd2"] == pytest.approx(expected, abs=1e-9)
    assert out["mmd_bandwidth"] == pytest.approx(sigma)


@pytest.fixture(scope="module")
def digits_train():
    return create_dataset("digits").split("train").images


def halves(images, n, seed):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:n]], images[order[n : 2 * n]]


def test_multi_bandwidth_mmd_type_one_error_and_power_on_pixels(digits_train):
    null = [
        mmd_permutation_test(
            *halves(digits_train, 100, s),
            permutations=200,
            seed=s,
            bandwidth_multipliers=MULTI_BANDWIDTHS,
        )["mmd_p_value"]
        for s in range(40)
    ]
    shifted = []
    for s in range(1000, 1040):
        a, b = halves(digits_train, 100, s)
        shifted.append(
            mmd_permutation_test(
                a,
                (b - 0.3).clamp(-1, 1),
                permutations=200,
                seed=s,
                bandwidth_multipliers=MULTI_BANDWIDTHS,
            )["mmd_p_value"]
        )
    assert np.mean(np.array(null) < ALPHA) <= MAX_FALSE_REJECTION_RATE
    assert np.mean(np.array(shifted) < ALPHA) >= MIN_POWER


def test_domain_mmd_type_one_error_and_power(digits_domain_net):
    """In the trained digits domain network's features: real vs real is rejected at most at
    the nominal rate; a removed class (no 7s) is detected."""
    digits = create_dataset("digits")
    train = digits.split("train")
    with torch.no_grad():
        feats = digits_domain_net.features(train.images)
    scale = feats.std(0).clamp_min(1e-6)
    feats = (feats - feats.mean(0)) / scale
    labels = train.labels
    rates = {"null": [], "shift": [], "null_multi": [], "shift_multi": []}
    for s in range(40):
        a, b = halves(feats, N_DOMAIN, s)
        no_seven = feats[labels != 7]
        c, _ = halves(no_seven, N_DOMAIN, 5000 + s)
        for tag, mult in (("", (1.0,)), ("_multi", MULTI_BANDWIDTHS)):
            rates["null" + tag].append(
                mmd_permutation_test(a, b, permutations=200, seed=s, bandwidth_multipliers=mult)[
                    "mmd_p_value"
                ]
            )
            rates["shift" + tag].append(
                mmd_permutation_test(a, c, permutations=200, seed=s, bandwidth_multipliers=mult)[
                    "mmd_p_value"
                ]
            )
    reject = {k: float(np.mean(np.array(v) < ALPHA)) for k, v in rates.items()}
    assert reject["null"] <= MAX_FALSE_REJECTION_RATE, reject
    assert reject["null_multi"] <= MAX_FALSE_REJECTION_RATE, reject
    assert reject["shift"] >= MIN_POWER, reject
    assert reject["shift_multi"] >= MIN_POWER, reject


# --- KID: torch-fidelity's against the suite's MMD² on the same features ------------------------


def poly_kernel(f: torch.Tensor) -> torch.Tensor:
    """torch-fidelity's KID kernel: (x.y / d + 1)^3."""
    return (f @ f.T / f.shape[1] + 1) ** 3


def test_kid_from_torch_fidelity_equals_unbiased_mmd2_on_the_same_features():
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(7)
    real = torch.randn(60, 12, generator=g, dtype=torch.float64)
    fake = torch.randn(50, 12, generator=g, dtype=torch.float64) * 1.2 + 0.2
    # the whole sets as one subset: KID is exactly the unbiased MMD² with the cubic kernel
    tf = kid_features_to_metric(
        real, fake, kid_subsets=1, kid_subset_size=50, rng_seed=3, verbose=False
    )
    rs = np.random.RandomState(3)
    i1 = torch.from_numpy(rs.choice(60, 50, replace=False))
    i2 = torch.from_numpy(rs.choice(50, 50, replace=False))
    pooled = torch.cat([real[i1], fake[i2]])
    ours = mmd2_unbiased(poly_kernel(pooled), 50)
    assert tf["kernel_inception_distance_mean"] == pytest.approx(ours, rel=1e-9)
    # many subsets: the mean of the subsets' MMD², subsets drawn as torch-fidelity draws them
    tf = kid_features_to_metric(
        real, fake, kid_subsets=20, kid_subset_size=30, rng_seed=5, verbose=False
    )
    rs = np.random.RandomState(5)
    values = []
    for _ in range(20):
        a = real[torch.from_numpy(rs.choice(60, 30, replace=False))]
        b = fake[torch.from_numpy(rs.choice(50, 30, replace=False))]
        values.append(mmd2_unbiased(poly_kernel(torch.cat([a, b])), 30))
    assert tf["kernel_inception_distance_mean"] == pytest.approx(float(np.mean(values)), rel=1e-9)
    assert tf["kernel_inception_distance_std"] == pytest.approx(float(np.std(values)), rel=1e-6)
