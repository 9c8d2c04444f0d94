"""The contract every registered evaluator keeps, parametrised over the registry (timm-style,
as ``test_architecture_contract.py`` does for architectures).

Every metric and explainer is run on every built-in architecture it applies to (and, where it
applies, on the real-data reference), deciding applicability as the matrix does
(``Evaluator.not_applicable_reason`` with the architecture's capabilities and the dataset's
features). Each runs on an *untrained* model at the fingerprints' small sizes
(``ganbench.run.fingerprint_inputs``: width-8 architectures, ``EVALUATOR_PARAMS``), on the first
built-in procedural dataset offering what it needs (digits; shapes for the factors), with
that dataset's pinned domain network, through an ``EvalContext`` built as ``run_evaluate``
builds one. It must return exactly the scores it declares, each a finite number (a trial
fails on anything else), p-values within [0, 1], ``integer`` scores whole and costs not
negative. ``Score`` declares no range or optional flag, so nothing else is bounded.

The cases are read from the registries when the file is collected: a newly registered
evaluator is covered at once, and one that applies to no built-in architecture fails
``test_every_registered_evaluator_runs_on_some_architecture``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ganbench.core.errors import NotApplicable
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import (
    create_dataset,
    evaluator_registry,
    get_architecture,
    get_dataset,
    list_architectures,
    list_datasets,
    list_explainers,
    list_metrics,
)
from ganbench.run import fingerprint_inputs
from ganbench.run.domain import pinned_network
from ganbench.run.execute import numerics, seed_everything

pytestmark = pytest.mark.usefixtures("one_thread")

REAL = "real"  # the real-data reference (model None), as a case's source
SEED = 0
# smaller than the fingerprints' sizes, for speed only: Inception-v3 features of layer 64
# instead of 2048 (the 2048x2048 covariance square root alone takes seconds per case)
FASTER = {"fid_inception": {"n": 4, "kid_subset_size": 2, "feature_layer": "64"}}

_DATASETS: dict[str, object] = {}


def dataset(name: str):
    """A built-in dataset at its defaults (those the pinned domain networks were trained on),
    made once per process."""
    if name not in _DATASETS:
        _DATASETS[name] = create_dataset(name)
    return _DATASETS[name]


def procedural_datasets() -> list[str]:
    """The built-in datasets that need no files on disk (the others take a ``root``)."""
    return [d for d in list_datasets() if "root" not in get_dataset(d).defaults]


def evaluator_class(name: str):
    return evaluator_registry(name).get(name)


def dataset_for(name: str) -> str | None:
    """The first procedural dataset offering every feature ``name`` requires, or None."""
    needs = evaluator_class(name).requires_dataset
    for d in procedural_datasets():
        if needs <= dataset(d).spec.features:
            return d
    return None


def sources(name: str) -> list[str]:
    """The built-in architectures (then the real-data reference) ``name`` applies to, decided
    as ``trials.expand`` decides it."""
    cls, d = evaluator_class(name), dataset_for(name)
    if d is None:
        return []
    features = dataset(d).spec.features
    out = [
        arch
        for arch in list_architectures()
        if cls.not_applicable_reason(get_architecture(arch).capabilities, features, arch) is None
    ]
    if cls.not_applicable_reason(frozenset(), features, "the real-data reference") is None:
        out.append(REAL)
    return out


EVALUATORS = list_metrics() + list_explainers()
CASES = [
    pytest.param(name, source, d, id=f"{name}-{source}-{d}")
    for name in EVALUATORS
    for d in [dataset_for(name)]
    for source in sources(name)
]


@pytest.fixture(scope="module")
def evaluator_params(tmp_path_factory):
    """Each evaluator's small parameters (the fingerprints', plus :data:`FASTER`), made once:
    fid_inception's stand-in Inception-v3 weights file is written once for the module."""
    where = tmp_path_factory.mktemp("evaluator-params")
    made: dict[str, dict] = {}

    def params(name: str) -> dict:
        if name not in made:
            made[name] = fingerprint_inputs.evaluator_params(name, where) | FASTER.get(name, {})
        return made[name]

    return params


@pytest.fixture(scope="module")
def feature_dirs(tmp_path_factory):
    """One feature cache per set of samples (a source on a dataset), shared by the evaluators
    that score it as the runner shares one (``execute.feature_cache_dir``): every case builds
    its untrained model from the same seed, so the cached features are those it would extract."""
    made: dict[tuple[str, str], Path] = {}

    def folder(source: str, dataset_name: str) -> Path:
        if (source, dataset_name) not in made:
            made[source, dataset_name] = tmp_path_factory.mktemp(f"features-{source}")
        return made[source, dataset_name]

    return folder


def test_every_registered_evaluator_runs_on_some_architecture():
    covered = {case.values[0] for case in CASES if case.values[1] != REAL}
    missing = {name: dataset_for(name) for name in EVALUATORS if name not in covered}
    assert not missing, (
        "these evaluators apply to no built-in architecture on any procedural built-in dataset, "
        f"so no case exercises them (name: dataset found): {missing}"
    )


def evaluate_case(
    name: str, source: str, dataset_name: str, params: dict, feature_dir: Path, artifact_dir: Path
) -> dict[str, float]:
    """``name``'s scores on an untrained ``source`` (or the real-data reference) on
    ``dataset_name``, through an EvalContext built as ``run_evaluate`` builds one; a
    ``NotApplicable`` found while evaluating skips the case, as the runner records n/a."""
    cls = evaluator_class(name)
    ds = dataset(dataset_name)
    seed_everything(SEED)
    model = (
        None
        if source == REAL
        else fingerprint_inputs.small_architecture(source, ds.spec, SEED).eval()
    )
    evaluator = cls(**params)
    pinned = pinned_network(dataset_name, {})
    if "domain" in cls.requires_dataset:
        assert pinned is not None, f"{dataset_name} ships no pinned domain network for {name}"
    ctx = EvalContext(
        model=model,
        dataset=ds,
        device=torch.device("cpu"),
        seed=SEED,
        artifact_dir=artifact_dir,
        domain_dir=pinned.path if pinned else None,
        domain_sha256=pinned.sha256 if pinned else None,
        feature_dir=feature_dir,
    )
    try:
        with numerics(ctx.device, "fp32"):
            return evaluate_and_write(evaluator, ctx)
    except NotApplicable as exc:
        pytest.skip(f"n/a: {exc}")


def assert_declared(cls, scores: dict, where: str) -> None:
    """``scores`` are exactly ``cls``'s declared scores, finite, with p-values in [0, 1],
    counts whole and costs not negative."""
    declared = {s.name for s in cls.scores}
    extra, missing = sorted(set(scores) - declared), sorted(declared - set(scores))
    assert not extra and not missing, (
        f"{cls.name} on {where}: undeclared scores {extra}, declared but missing {missing}"
    )
    values = {k: float(v) for k, v in scores.items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    assert not bad, f"{cls.name} on {where}: non-finite scores {bad}"
    for score in cls.scores:
        v = values[score.name]
        at = f"{cls.name}.{score.name} on {where}"
        if score.is_p_value:
            assert 0.0 <= v <= 1.0, f"{at}: p-value {v} outside [0, 1]"
        if score.integer:
            assert v == round(v), f"{at}: declared an integer count, returned {v}"
        if score.cost:
            assert v >= 0.0, f"{at}: a cost (seconds, memory) of {v}"


@pytest.mark.parametrize(("name", "source", "dataset_name"), CASES)
def test_evaluator_returns_its_declared_scores(
    name, source, dataset_name, evaluator_params, feature_dirs, tmp_path
):
    scores = evaluate_case(
        name,
        source,
        dataset_name,
        evaluator_params(name),
        feature_dirs(source, dataset_name),
        tmp_path,
    )
    assert_declared(evaluator_class(name), scores, f"{source}/{dataset_name}")
