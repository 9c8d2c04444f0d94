"""A matrix config expanded into trials, each keyed by the sha256 of its canonical JSON.

A trial's config holds everything that decides its numbers: names, declared versions,
parameters, seed, device type, the schema version and, for evaluations that read a domain
network, the sha256 of its weights (:mod:`ganbench.run.keys`). Same key, same numbers; a rerun
skips what is finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ganbench.core.evaluator import evaluator_family
from ganbench.core.registry import evaluator_registry, get_architecture, get_dataset
from ganbench.run.config import NUMERICS_KEYS, TRAIN_DEFAULTS, MatrixConfig
from ganbench.run.domain import domain_config, domain_ref, pinned_network
from ganbench.run.keys import SCHEMA_VERSION, canonical_json, part_of, trial_key

__all__ = [
    "SCHEMA_VERSION",
    "Trial",
    "canonical_json",
    "domain_weights_of",
    "evaluate_config",
    "expand",
    "part_of",
    "train_config",
    "trial_key",
]


# the reference label of a partial training of the first seed (``checkpoints`` in a matrix;
# its labels hold ``steps``)
CHECKPOINT = "checkpoint"


@dataclass
class Trial:
    """One cell of the matrix: a train or an evaluate trial."""

    key: str
    kind: str  # "domain" | "train" | "evaluate"
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


def train_config(
    arch: str | dict[str, Any],
    arch_params: dict,
    dataset: str,
    dataset_params: dict,
    seed: int,
    steps: int,
    train: dict[str, Any],
    device_type: str,
) -> dict[str, Any]:
    """A train trial's config. ``arch`` is a registered name, or an architecture part
    (name, version, params) as a stored config holds it, for checking a submission."""
    part = part_of(get_architecture(arch), arch_params) if isinstance(arch, str) else arch
    config = {
        "schema": SCHEMA_VERSION,
        "kind": "train",
        "architecture": part,
        "dataset": part_of(get_dataset(dataset), dataset_params),
        "seed": seed,
        "budget": {"steps": steps, "batch_size": train["batch_size"]},
        "log_every": train["log_every"],
        "grid_size": train["grid_size"],
        "device": device_type,
    }
    # the numerics switches enter the key only when set, so that fp32 eager trials keep the
    # keys they had before the switches existed
    config.update(
        {k: train[k] for k in NUMERICS_KEYS if train.get(k, TRAIN_DEFAULTS[k]) != TRAIN_DEFAULTS[k]}
    )
    return config


def evaluate_config(
    cfg: MatrixConfig,
    evaluator: str,
    source: dict[str, Any],
    seed: int,
    device_type: str,
    domain: dict[str, Any] | None,
) -> dict[str, Any]:
    """An evaluate trial's config: ``evaluator`` of the matrix scoring ``source`` (a train key
    or the real-data reference), with the dataset's domain network (:func:`domain_ref`) when
    the evaluator reads it."""
    ev_cls = evaluator_registry(evaluator).get(evaluator)
    econfig = {
        "schema": SCHEMA_VERSION,
        "kind": "evaluate",
        "source": source,
        "evaluator": part_of(ev_cls, ev_cls.key_params(cfg.evaluator_params[evaluator])),
        "seed": seed,
        "device": device_type,
    }
    if "domain" in ev_cls.requires_dataset and domain:
        econfig["domain"] = domain
    return econfig


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
    dcfg = domain_config(dataset, dparams)
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
        dparams = cfg.dataset_params[dataset]
        features = get_dataset(dataset)(**dparams).spec.features
        plan = domain_plan(cfg, dataset, domain_weights)
        if plan.trial is not None:
            domains.append(plan.trial)
        domain_extra: dict[str, Any] = {}
        if plan.trial is not None:
            domain_extra = {"domain": plan.trial.key, "provisional": plan.provisional}
        elif plan.directory is not None:
            domain_extra = {"domain_dir": plan.directory}
        sources: list[tuple[str, str | None, str | None, dict | None, frozenset[str]]] = []
        for seed in cfg.seeds:
            for arch in cfg.architectures:
                if cfg.excluded(arch, dataset) or seed not in cfg.seeds_for(arch):
                    continue
                arch_cls = get_architecture(cfg.base_architecture(arch))
                train = cfg.train_for(arch, dataset)
                variants = [("trained", train["steps"])]
                if "untrained" in cfg.references:
                    variants.append(("untrained", 0))
                if seed == cfg.seeds_for(arch)[0]:
                    variants += [(CHECKPOINT, s) for s in cfg.checkpoints if s < train["steps"]]
                for reference, steps in variants:
                    tcfg = train_config(
                        cfg.base_architecture(arch),
                        cfg.architecture_params[arch],
                        dataset,
                        dparams,
                        seed,
                        steps,
                        train,
                        device_type,
                    )
                    labels = {
                        "architecture": arch,
                        "dataset": dataset,
                        "seed": seed,
                        "reference": reference,
                    }
                    if reference == CHECKPOINT:
                        labels["steps"] = steps
                    t = Trial(trial_key(tcfg), "train", tcfg, labels)
                    trials.append(t)
                    sources.append((labels, t.key, {"train": t.key}, arch_cls.capabilities))
            if "real" in cfg.references:
                src = {
                    "real": {"dataset": part_of(get_dataset(dataset), dparams), "split": "train"}
                }
                labels = {"architecture": "real data", "dataset": dataset, "seed": seed}
                sources.append((labels | {"reference": "real"}, None, src, frozenset()))
            for source_labels, train_key, source, caps in sources:
                reference = source_labels["reference"]
                arch = None if reference == "real" else source_labels["architecture"]
                for ev in cfg.evaluators:
                    ev_cls = evaluator_registry(ev).get(ev)
                    if reference == CHECKPOINT and evaluator_family(ev) != "quality":
                        continue  # partial trainings are scored by the quality metrics only
                    econfig = evaluate_config(cfg, ev, source, seed, device_type, plan.ref)
                    extra = dict(domain_extra) if "domain" in econfig else {}
                    if econfig["evaluator"]["params"] != cfg.evaluator_params[ev]:
                        extra["evaluator_params"] = cfg.evaluator_params[ev]  # e.g. a local path
                    who = arch if arch else "the real-data reference"
                    labels = source_labels | {"evaluator": ev}
                    evaluations.append(
                        Trial(
                            trial_key(econfig),
                            "evaluate",
                            econfig,
                            labels,
                            depends_on=train_key,
                            not_applicable=ev_cls.not_applicable_reason(caps, features, who),
                            extra=extra,
                        )
                    )
            sources.clear()
    return domains + trials + evaluations
