"""Nearest-neighbour two-sample scores in the dataset's domain-network features.

* ``knn_c2st`` — the classifier two-sample test (Lopez-Paz & Oquab 2017) with a k-nearest-
  neighbour classifier on features instead of a CNN on pixels: real and generated features
  pooled, each side halved into balanced train and test halves, every test point labelled
  by the majority of its k = ⌊√n_train⌋ nearest training points (Euclidean; a tied vote
  goes to the label of the single nearest neighbour). Held-out accuracy, its exact 95% Clopper-Pearson interval and the one-sided
  binomial p-value of "accuracy is chance".
* ``one_nn`` — the 1-NN two-sample accuracy of Xu et al. (2018, "An empirical study on
  evaluation metrics of GANs"): leave-one-out 1-NN classification of the pooled real and
  generated features. 0.5 is ideal; the real and generated accuracies apart tell mode
  collapse (generated points find each other and real points far from them find each
  other: both accuracies high) from memorisation (generated copies of training images sit on
  real points: accuracies at or below 0.5). Its p-value is a permutation test: the nearest
  neighbour of every point does not depend on the labels, so under H0 (the pooled points
  exchangeable) the accuracy of randomly relabelled points (n real, n generated) is the
  null distribution; p = (1 + #{permuted ≥ observed}) / (1 + B), one-sided (separable).
* ``memorisation`` — for each generated image, its distance to the nearest *training*
  image, against the same distance for held-out real images (which the generator never
  saw): the ratio of the medians (well below 1 = generated images sit closer to the
  training set than new real images do: copying), and the fraction of generated images
  closer to a training image than every held-out image is. Held-out images that are
  themselves copies of a training image (the procedural shapes repeat some images across
  splits: 29 of the 2,000 held-out shapes) are left out of the reference first: with one of
  them in it, "closer than every held-out image" meant "closer than 0" and exact copies
  scored 0. A copy is a nearest-training distance at most ``COPY_TOLERANCE`` times the mean
  one (float rounding of identical features: ~1e-7 against ~1; the nearest distinct shapes
  are ~0.3 apart). Both scores are descriptive (a check, not a ranking): every generator
  that does not copy scores ~0, trained or untrained, and the real data's copies score 1.

Features are the domain network's embedding (the penultimate layer of the classifier the
suite trains on the real training split), standardised by the real training features'
mean and standard deviation, so that no one feature dominates the distances.
"""

from __future__ import annotations

import torch

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_metric
from ganbench.core.scores import (
    MEMORISATION,
    NOISY,
    TESTS,
    Score,
    count_score,
    interval_scores,
    p_value_score,
)

from ._stats import chance_test, paired_features

# a held-out row whose nearest training row is this close, relative to the mean such distance,
# is a copy of it (left out of the memorisation reference)
COPY_TOLERANCE = 1e-4
PERMUTATION_CHUNK = 256  # relabellings of the 1-NN permutation test drawn at a time


def standardiser(reference: torch.Tensor):
    mean, std = reference.mean(0), reference.std(0).clamp_min(1e-6)
    return lambda f: (f - mean) / std


def knn_c2st(
    real: torch.Tensor, fake: torch.Tensor, *, seed: int, k: int | None = None
) -> dict[str, float]:
    """k-NN classifier two-sample test on feature rows (n, D) of each side (n equal)."""
    if real.shape != fake.shape:
        raise ValueError(
            f"kNN C2ST needs equally shaped features, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    n = len(real)
    if n < 4:
        raise ValueError(f"kNN C2ST needs at least 4 points per side, got {n}")
    g = torch.Generator().manual_seed(seed)
    n_test = n // 2
    r, f = torch.randperm(n, generator=g), torch.randperm(n, generator=g)
    train = torch.cat([real[r[n_test:]], fake[f[n_test:]]]).double()
    train_y = torch.cat([torch.ones(n - n_test), torch.zeros(n - n_test)])
    test = torch.cat([real[r[:n_test]], fake[f[:n_test]]]).double()
    test_y = torch.cat([torch.ones(n_test), torch.zeros(n_test)])
    k = k or max(1, int(len(train) ** 0.5))
    dist = torch.cdist(test, train)
    nearest = dist.topk(k, largest=False).indices  # sorted nearest first
    votes = train_y[nearest].sum(1)
    predicted = torch.where(votes * 2 == k, train_y[nearest[:, 0]], (votes * 2 > k).double())
    correct = int((predicted == test_y).sum())
    total = len(test_y)
    p_value, ci_low, ci_high = chance_test(correct, total)
    return {
        "knn_c2st_accuracy": correct / total,
        "knn_c2st_p_value": p_value,
        "knn_c2st_ci_low": ci_low,
        "knn_c2st_ci_high": ci_high,
        "knn_c2st_k": float(k),
        "knn_c2st_n": float(n),
    }


def one_nn_accuracy(
    real: torch.Tensor, fake: torch.Tensor, *, permutations: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Leave-one-out 1-NN accuracy of real (label 1) ∪ fake (label 0) feature rows, with its
    permutation p-value over ``permutations`` seeded relabellings."""
    pooled = torch.cat([real, fake]).double()
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    dist = torch.cdist(pooled, pooled)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.argmin(1)
    right = labels[nearest] == labels
    accuracy = float(right.double().mean())
    g = torch.Generator().manual_seed(seed)
    exceed = 0
    for start in range(0, permutations, PERMUTATION_CHUNK):
        b = min(PERMUTATION_CHUNK, permutations - start)
        shuffled = labels[torch.argsort(torch.rand(b, len(labels), generator=g), dim=1)]
        permuted = (shuffled == shuffled[:, nearest]).double().mean(1)
        # the same float sums as the observed accuracy's; a tie counts as reaching it
        exceed += int((permuted >= accuracy - 1e-12).sum())
    return {
        "one_nn_accuracy": accuracy,
        "one_nn_real_accuracy": float(right[: len(real)].double().mean()),
        "one_nn_generated_accuracy": float(right[len(real) :].double().mean()),
        "one_nn_p_value": (1 + exceed) / (1 + permutations),
        "one_nn_n": float(len(real)),
    }


def memorisation_scores(
    train: torch.Tensor, held_out: torch.Tensor, generated: torch.Tensor
) -> dict[str, float]:
    """Distances to the nearest training row: generated against held-out real, the held-out
    rows that copy a training row left out (module doc)."""

    def nearest(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [torch.cdist(c.double(), train.double()).min(1).values for c in x.split(1024)]
        )

    d_gen, d_held = nearest(generated), nearest(held_out)
    copies = d_held <= COPY_TOLERANCE * float(d_held.mean())
    if bool(copies.all()):
        raise ValueError("every held-out row copies a training row: nothing to compare with")
    d_held = d_held[~copies]
    median_held = float(d_held.median())
    return {
        "memorisation_ratio": float(d_gen.median()) / median_held,
        "memorised_fraction": float((d_gen < d_held.min()).double().mean()),
        "nearest_train_generated": float(d_gen.median()),
        "nearest_train_held_out": median_held,
        "memorisation_held_out_n": float(len(d_held)),
        "memorisation_n": float(len(generated)),
    }


def standardised_domain_features(
    ctx: EvalContext, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Domain features of up to ``n`` real test images, as many generated ones and every
    training image, standardised by the training features' mean and std; read from the
    trial set's feature cache (one extraction per sample set, whichever metric asks first)."""
    real, fake = paired_features(ctx, "domain", n)
    train = ctx.features("domain", "train")
    scale = standardiser(train)
    return scale(real), scale(fake), scale(train)


class _FeatureMetric(Evaluator):
    version = "1"
    requires_dataset = frozenset({"domain"})

    def features(self, ctx: EvalContext, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardised domain features of up to ``n`` real test and as many generated images,
        and of the training images."""
        return standardised_domain_features(ctx, n)


@register_metric("knn_c2st")
class KnnC2ST(_FeatureMetric):
    """C2ST with a k-NN classifier (k = ⌊√n_train⌋) on standardised domain features."""

    group = TESTS

    defaults = {"n": 500}
    scores = (
        Score(
            "knn_c2st_accuracy",
            "lower",
            "held-out accuracy of a k-NN classifier (k = ⌊√n_train⌋) telling real from generated "
            "domain features; 0.5 = indistinguishable",
            ideal=0.5,
        ),
        p_value_score(
            "knn_c2st_p_value", "one-sided exact binomial p-value of H0: accuracy is 1/2"
        ),
        *interval_scores("knn_c2st"),
        count_score("knn_c2st_k", "neighbours voting"),
        count_score("knn_c2st_n"),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        real, fake, _ = self.features(ctx, self.params["n"])
        return knn_c2st(real, fake, seed=ctx.seed)


@register_metric("one_nn")
class OneNN(_FeatureMetric):
    """Leave-one-out 1-NN two-sample accuracy (Xu et al. 2018) on standardised domain features,
    with a permutation p-value."""

    group = TESTS

    version = "2"
    defaults = {"n": 500, "permutations": 1000}
    scores = (
        Score(
            "one_nn_accuracy",
            "lower",
            "leave-one-out 1-NN accuracy on pooled real and generated domain features; 0.5 = "
            "indistinguishable, 1 = separable",
            ideal=0.5,
        ),
        Score(
            "one_nn_real_accuracy",
            "none",
            "the same over the real points alone (high with mode collapse: real points far from any generated one)",
        ),
        Score(
            "one_nn_generated_accuracy",
            "none",
            "the same over the generated points alone (below 0.5: generated points sit on real "
            "ones, as copies would)",
        ),
        p_value_score(
            "one_nn_p_value",
            "permutation p-value of H0: real and generated are exchangeable (the share of random "
            "relabellings of the pooled points whose 1-NN accuracy reaches the observed one)",
        ),
        count_score("one_nn_n"),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        real, fake, _ = self.features(ctx, self.params["n"])
        p = self.params
        return one_nn_accuracy(real, fake, permutations=p["permutations"], seed=ctx.seed)


@register_metric("memorisation")
class Memorisation(_FeatureMetric):
    """Are generated images closer to the training set than new real images are? (A check,
    not a ranking: every score is descriptive.)"""

    group = MEMORISATION

    version = "2"
    defaults = {"n": 500}
    scores = (
        Score(
            "memorisation_ratio",
            "none",
            "median distance of a generated image to its nearest training image over the same for "
            "held-out real images (domain features): ~1 = no closer than new data, near 0 = copies",
            ideal=1.0,
            tolerance=NOISY,
        ),
        Score(
            "memorised_fraction",
            "none",
            "fraction of generated images closer to a training image than every held-out real "
            "image is (held-out copies of training images left out): 1 = copies; a generator "
            "drawing fresh images scores about 1/(held-out + 1). A check, not a ranking",
        ),
        Score(
            "nearest_train_generated",
            "none",
            "median nearest-training distance, generated",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "nearest_train_held_out",
            "none",
            "median nearest-training distance, held-out real (copies of training images left out)",
            primary=False,
        ),
        count_score(
            "memorisation_held_out_n",
            "held-out real images compared with (those not copying a training image)",
        ),
        count_score("memorisation_n", "generated images used"),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        real, fake, train = self.features(ctx, self.params["n"])
        return memorisation_scores(train, real, fake)
