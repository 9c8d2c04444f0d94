"""Nearest-neighbour metrics (kNN C2ST, 1-NN accuracy, memorisation) on data whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_dataset, create_metric
from ganbench.metrics.neighbours import knn_c2st, memorisation_scores, one_nn_accuracy
from tests.conftest import eval_context

ALPHA = 0.05


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    """The digits training images as (N, 1024) rows."""
    return create_dataset("digits").split("train").images.flatten(1)


def halves(x: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[:n]], x[order[n : 2 * n]]


def test_knn_c2st_rejects_real_vs_real_at_most_at_nominal_rate(pixels):
    p = [knn_c2st(*halves(pixels, 150, s), seed=s)["knn_c2st_p_value"] for s in range(100)]
    assert np.mean(np.asarray(p) < ALPHA) <= 0.1


def test_knn_c2st_detects_a_small_shift(pixels):
    p = []
    for s in range(1000, 1040):
        real, other = halves(pixels, 150, s)
        p.append(knn_c2st(real, (other - 0.3).clamp(-1, 1), seed=s)["knn_c2st_p_value"])
    assert np.mean(np.asarray(p) < ALPHA) >= 0.9


def test_knn_c2st_reports_k_n_and_an_exact_interval(pixels):
    real, other = halves(pixels, 150, 0)
    out = knn_c2st(real, other, seed=0)
    assert out["knn_c2st_k"] == int(150**0.5) and out["knn_c2st_n"] == 150
    correct = round(out["knn_c2st_accuracy"] * 150)
    ci = binomtest(correct, 150).proportion_ci(method="exact")
    assert out["knn_c2st_ci_low"] == pytest.approx(ci.low)
    with pytest.raises(ValueError, match="equally shaped"):
        knn_c2st(real, other[:10], seed=0)


def test_one_nn_is_half_on_one_distribution_and_zero_on_copies(pixels):
    accs = [one_nn_accuracy(*halves(pixels, 200, s))["one_nn_accuracy"] for s in range(10)]
    assert abs(np.mean(accs) - 0.5) < 0.05
    real, _ = halves(pixels, 200, 0)
    copies = one_nn_accuracy(real, real.clone())  # each point's nearest other is its copy
    assert copies["one_nn_accuracy"] == 0.0


def test_one_nn_separates_a_collapsed_generator(pixels):
    real, other = halves(pixels, 200, 1)
    g = torch.Generator().manual_seed(0)
    collapsed = other[:1] + 0.01 * torch.randn(200, other.shape[1], generator=g)
    out = one_nn_accuracy(real, collapsed)
    assert out["one_nn_generated_accuracy"] == 1.0 and out["one_nn_real_accuracy"] > 0.95


def test_memorisation_finds_copies_and_not_new_data(pixels):
    train, rest = pixels[:1000], pixels[1000:]
    held_out, fresh = rest[:200], rest[200:400]
    copied = memorisation_scores(train, held_out, train[:200])
    assert copied["memorised_fraction"] == 1.0 and copied["memorisation_ratio"] == 0.0
    new = memorisation_scores(train, held_out, fresh)
    assert 0.8 < new["memorisation_ratio"] < 1.25
    assert new["memorised_fraction"] <= 0.05


class Flatten:
    """Stands in for a domain network: its features are the pixels."""

    def features(self, x):
        return x.flatten(1)


@pytest.mark.parametrize("name", ["knn_c2st", "one_nn", "memorisation"])
def test_evaluators_on_the_real_data_reference(name, tmp_path):
    """The real-data reference's "samples" are training images: memorised by definition."""
    digits = create_dataset("digits")
    metric = create_metric(name, n=100)
    scores = evaluate_and_write(metric, eval_context(None, digits, tmp_path, domain=Flatten()))
    assert set(scores) == {s.name for s in metric.scores}
    if name == "memorisation":
        assert scores["memorised_fraction"] == 1.0
    elif name == "knn_c2st":
        assert scores["knn_c2st_n"] == 100 and 0.3 < scores["knn_c2st_accuracy"] < 0.7
    else:
        assert 0.3 < scores["one_nn_accuracy"] < 0.7


# --- issue 31: memorisation that survives duplicates; a p-value for one_nn ----------------------


def projected(dataset: str, split: str) -> torch.Tensor:
    """A dataset split seen through a fixed random projection to 64 features (copies stay copies)."""
    from tests.conftest import Projection

    images = create_dataset(dataset).split(split).images
    return Projection(images[0].numel(), 64).features(images)


@pytest.mark.parametrize("dataset", ["digits", "shapes"])
def test_memorisation_scores_the_real_data_reference_1_on_both_datasets(dataset, tmp_path):
    """The real-data reference's samples are training images, so every one is a copy. The
    shapes' test split holds exact duplicates of training images (29 of 2,000): a threshold
    set by the nearest held-out image collapsed to 0 when one of them was drawn."""
    from tests.conftest import Projection

    data = create_dataset(dataset)
    domain = Projection(data.split("train").images[0].numel(), 64)
    metric = create_metric("memorisation", n=360)
    scores = evaluate_and_write(metric, eval_context(None, data, tmp_path, domain=domain))
    assert set(scores) == {s.name for s in metric.scores}
    assert scores["memorised_fraction"] == 1.0
    assert scores["memorisation_ratio"] < 1e-3


@pytest.mark.parametrize("dataset", ["digits", "shapes"])
def test_memorisation_tells_copies_from_fresh_images_on_both_datasets(dataset):
    train, test = projected(dataset, "train"), projected(dataset, "test")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    half = min(360, len(test) // 2)
    held_out, fresh = test[order[:half]], test[order[half : 2 * half]]
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:half]]
    assert memorisation_scores(train, held_out, copies)["memorised_fraction"] == 1.0
    new = memorisation_scores(train, held_out, fresh)
    # fresh draws of the data: below the nearest held-out image about 1 in (n + 1) times, plus
    # the shapes' own duplicates of training images (about 1.5% of any draw)
    assert new["memorised_fraction"] <= 0.05
    assert 0.8 < new["memorisation_ratio"] < 1.25


def test_memorisation_is_a_check_not_a_ranking():
    """Every generator that does not copy scores ~0: ranking on it would tie every trained and
    untrained model and crown the real data's copies worst."""
    from ganbench.core.registry import get_metric

    metric = get_metric("memorisation")
    assert metric.score("memorised_fraction").direction == "none"
    assert metric.score("memorisation_ratio").direction == "none"


def test_one_nn_p_value_is_a_seeded_permutation_count(pixels):
    real, other = halves(pixels, 100, 3)
    out = one_nn_accuracy(real, other, permutations=199, seed=4)
    assert out == one_nn_accuracy(real, other, permutations=199, seed=4)
    count = out["one_nn_p_value"] * 200  # (1 + count) / (1 + B)
    assert count == pytest.approx(round(count)) and 1 <= round(count) <= 200
    # a separable pair: no label permutation reaches the observed accuracy
    far = one_nn_accuracy(real, (other - 0.8).clamp(-1, 1), permutations=199, seed=4)
    assert far["one_nn_p_value"] == pytest.approx(1 / 200)


def test_one_nn_rejects_real_vs_real_at_most_at_nominal_rate(pixels):
    p = [
        one_nn_accuracy(*halves(pixels, 100, s), permutations=200, seed=s)["one_nn_p_value"]
        for s in range(200)
    ]
    # 200 draws: the nominal 0.05 plus about three binomial standard errors (0.015)
    assert np.mean(np.asarray(p) < ALPHA) <= 0.095


def test_one_nn_detects_a_small_shift(pixels):
    p = []
    for s in range(2000, 2040):
        real, other = halves(pixels, 100, s)
        p.append(
            one_nn_accuracy(real, (other - 0.3).clamp(-1, 1), permutations=200, seed=s)[
                "one_nn_p_value"
            ]
        )
    assert np.mean(np.asarray(p) < ALPHA) >= 0.9
