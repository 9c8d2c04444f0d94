"""A matrix config expanded into trials, each keyed by the sha256 of its canonical JSON.

A trial's config holds everything that decides its numbers: names, declared versions,
parameters, seed, device type, the schema version and, for evaluations that read a domain
network, the sha256 of its weights (:mod:`ganbench.run.keys`). Same key, same numbers; a rerun
skips what is finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ganbench.core.evaluator import evaluator_family
from ganbench.core.registry import evaluator_registry, get_architecture, get_dataset
from ganbench.run.config import MatrixConfig
from ganbench.run.domain import domain_ref, pinned_network
from ganbench.run.keys import SCHEMA_VERSION, canonical_json, part_of, trial_key
from ganbench.run.kinds import Domain, Evaluate, Train

__all__ = [
    "SCHEMA_VERSION",
    "Trial",
    "canonical_json",
    "describe",
    "domain_weights_of",
    "expand",
    "part_of",
    "trial_key",
]


# the reference label of a partial training of the first seed (``checkpoints`` in a matrix;
# its labels hold ``steps``)
CHECKPOINT = "checkpoint"


@dataclass
class Trial:
    """One cell of the matrix: a train or an evaluate trial."""

    key: str
    kind: str  # "domain" | "train" | "evaluate": a key of ganbench.run.kinds.KINDS
    config: dict[str, Any]
    labels: dict[
        str, Any
    ]  # architecture, dataset, seed, evaluator, reference: for display and filtering
    depends_on: str | None = None
    not_applicable: str | None = None  # reason, when the evaluator cannot apply
    # "domain": the domain trial an evaluation waits for; "domain_dir": a pinned network's
    # folder; "provisional": the key names the domain trial, not yet its weights;
    # "evaluator_params": what the evaluator runs with, where its key holds other values
    # (a weights file's sha256 for its path: Evaluator.key_params)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def provisional(self) -> bool:
        return bool(self.extra.get("provisional"))


def describe(trial: Trial) -> str:
    """One line naming a trial: its kind, architecture (or reference), dataset, seed and
    evaluator."""
    lab = trial.labels
    parts = [lab.get("architecture") or "", lab.get("dataset", ""), f"seed {lab.get('seed')}"]
    if lab.get("reference") not in (None, "trained"):
        parts.insert(1, f"({lab['reference']})")
    if "evaluator" in lab:
        parts.append(lab["evaluator"])
    return f"{trial.kind} " + " ".join(p for p in parts if p)


def _wants_domain(cfg: MatrixConfig) -> bool:
    return any("domain" in evaluator_registry(ev).get(ev).requires_dataset for ev in cfg.evaluators)


@dataclass
class DomainPlan:
    """How a matrix's evaluations on one dataset get their domain network."""

    ref: dict[str, Any] | None = None  # what their keys hold (None: no evaluator reads one)
    trial: Trial | None = None  # the trial that trains it (a dataset without a pinned network)
    directory: str | None = None  # a pinned network's folder
    provisional: bool = False  # ``ref`` names ``trial``, whose weights do not exist yet


def domain_plan(
    cfg: MatrixConfig, dataset: str, domain_weights: Mapping[str, str] | None = None
) -> DomainPlan:
    """The pinned network of ``dataset`` or the trial that trains one. ``domain_weights`` maps
    finished domain trials' keys to their weights' sha256 (:func:`domain_weights_of`)."""
    dparams = cfg.dataset_params[dataset]
    if not _wants_domain(cfg) or "domain" not in get_dataset(dataset)(**dparams).spec.features:
        return DomainPlan()
    pinned = pinned_network(dataset, dparams)
    if pinned is not None:
        return DomainPlan(domain_ref(pinned.sha256), directory=str(pinned.path))
    dcfg = Domain.config(dataset, dparams)
    key = trial_key(dcfg)
    labels = {"architecture": "domain network", "dataset": dataset, "seed": 0}
    sha = (domain_weights or {}).get(key)
    return DomainPlan(
        domain_ref(sha, key), Trial(key, "domain", dcfg, labels), provisional=sha is None
    )


def domain_weights_of(records: Mapping[str, Any] | list) -> dict[str, str]:
    """Domain trial key -> weights sha256, from finished domain records (store rows or
    bundle records, as objects or dicts)."""
    out = {}
    rows = records.values() if isinstance(records, Mapping) else records
    for rec in rows:
        get = rec.get if isinstance(rec, dict) else lambda k, r=rec: getattr(r, k, None)
        if get("kind") == "domain" and get("status") == "finished":
            sha = (get("outputs") or {}).get("weights_sha256")
            if sha:
                out[get("key")] = sha
    return out


class _Source(NamedTuple):
    """What an evaluation scores: a train trial's model or the real-data reference."""

    labels: dict[str, Any]
    train_key: str | None
    source: dict[str, Any]  # as the evaluation's config holds it
    capabilities: frozenset[str]


def expand(
    cfg: MatrixConfig, device_type: str, domain_weights: Mapping[str, str] | None = None
) -> list[Trial]:
    """All trials of a matrix: domain networks, then training, then evaluations.

    An evaluation names the train trial it scores (``depends_on``) and, when its evaluator
    reads the dataset's domain network, that network's weights by their sha256: a pinned
    network's (``extra["domain_dir"]`` is its folder), or those of a ``domain`` trial
    (``extra["domain"]``), looked up in ``domain_weights`` (:func:`domain_weights_of`).
    Until that trial has finished, the evaluation's key is provisional: it names the domain
    trial's key instead, and the runner re-expands the matrix once the weights exist.
    """
    domains: list[Trial] = []
    trials: list[Trial] = []
    evaluations: list[Trial] = []
    for dataset in cfg.datasets:
        features = get_dataset(dataset)(**cfg.dataset_params[dataset]).spec.features
        plan = domain_plan(cfg, dataset, domain_weights)
        if plan.trial is not None:
            domains.append(plan.trial)
        for seed in cfg.seeds:
            sources = []
            for arch in cfg.architectures:
                if cfg.excluded(arch, dataset) or seed not in cfg.seeds_for(arch):
                    continue
                capabilities = get_architecture(cfg.base_architecture(arch)).capabilities
                for t in _train_trials(cfg, arch, dataset, seed, device_type):
                    trials.append(t)
                    sources.append(_Source(t.labels, t.key, {"train": t.key}, capabilities))
            if "real" in cfg.references:
                sources.append(_real_source(cfg, dataset, seed))
            for source in sources:
                evaluations += _evaluations(cfg, source, seed, device_type, plan, features)
    return domains + trials + evaluations


def _train_trials(
    cfg: MatrixConfig, arch: str, dataset: str, seed: int, device_type: str
) -> list[Trial]:
    """The train trials of one architecture, dataset and seed: the trained model, the
    untrained control when the matrix asks for it, and for the first seed the partial
    trainings (``checkpoints``)."""
    train = cfg.train_for(arch, dataset)
    variants = [("trained", train["steps"])]
    if "untrained" in cfg.references:
        variants.append(("untrained", 0))
    if seed == cfg.seeds_for(arch)[0]:
        variants += [(CHECKPOINT, s) for s in cfg.checkpoints if s < train["steps"]]
    out = []
    for reference, steps in variants:
        tcfg = Train.config(
            cfg.base_architecture(arch),
            cfg.architecture_params[arch],
            dataset,
            cfg.dataset_params[dataset],
            seed,
            steps,
            train,
            device_type,
        )
        labels = {"architecture": arch, "dataset": dataset, "seed": seed, "reference": reference}
        if reference == CHECKPOINT:
            labels["steps"] = steps
        out.append(Trial(trial_key(tcfg), "train", tcfg, labels))
    return out


def _real_source(cfg: MatrixConfig, dataset: str, seed: int) -> _Source:
    part = part_of(get_dataset(dataset), cfg.dataset_params[dataset])
    labels = {"architecture": "real data", "dataset": dataset, "seed": seed, "reference": "real"}
    return _Source(labels, None, {"real": {"dataset": part, "split": "train"}}, frozenset())


def _evaluations(
    cfg: MatrixConfig,
    source: _Source,
    seed: int,
    device_type: str,
    plan: DomainPlan,
    features: frozenset[str],
) -> list[Trial]:
    """The evaluations of one source by every evaluator of the matrix (partial trainings by
    the quality metrics only), each n/a where its evaluator cannot apply."""
    reference = source.labels["reference"]
    who = "the real-data reference" if reference == "real" else source.labels["architecture"]
    out = []
    for ev in cfg.evaluators:
        ev_cls = evaluator_registry(ev).get(ev)
        if reference == CHECKPOINT and evaluator_family(ev) != "quality":
            continue  # partial trainings are scored by the quality metrics only
        econfig = Evaluate.config(cfg, ev, source.source, seed, device_type, plan.ref)
        extra = _domain_extra(plan) if "domain" in econfig else {}
        if econfig["evaluator"]["params"] != cfg.evaluator_params[ev]:
            extra["evaluator_params"] = cfg.evaluator_params[ev]  # e.g. a local path
        out.append(
            Trial(
                trial_key(econfig),
                "evaluate",
                econfig,
                source.labels | {"evaluator": ev},
                depends_on=source.train_key,
                not_applicable=ev_cls.not_applicable_reason(source.capabilities, features, who),
                extra=extra,
            )
        )
    return out


def _domain_extra(plan: DomainPlan) -> dict[str, Any]:
    """How an evaluation that reads the domain network finds it: the domain trial that trains
    it (and whether the key is provisional), or a pinned network's folder."""
    if plan.trial is not None:
        return {"domain": plan.trial.key, "provisional": plan.provisional}
    if plan.directory is not None:
        return {"domain_dir": plan.directory}
    return {}
