"""A matrix config expanded into trials, each keyed by the sha256 of its canonical JSON.

A trial's config holds everything that defines its result: names, declared versions,
a hash of the source module that implements each part, parameters, seed, device type
and the schema version. Same key, same result; a rerun skips what is finished.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ganbench.config import NUMERICS_KEYS, TRAIN_DEFAULTS, MatrixConfig
from ganbench.registry import evaluator_registry, get_architecture, get_dataset

SCHEMA_VERSION = 1  # bump when the harness changes what a trial's numbers mean


def canonical_json(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def trial_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


@cache
def code_hash(cls: type) -> str:
    """Short sha256 of the source file that defines ``cls`` (its code version)."""
    path = inspect.getsourcefile(cls)
    data = open(path, "rb").read() if path else cls.__qualname__.encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _part(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": cls.name, "version": str(cls.version), "code": code_hash(cls), "params": params}


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
    extra: dict[str, Any] = field(default_factory=dict)


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
    (name, version, code, params) as a stored config holds it, for checking a submission."""
    part = _part(get_architecture(arch), arch_params) if isinstance(arch, str) else arch
    config = {
        "schema": SCHEMA_VERSION,
        "kind": "train",
        "architecture": part,
        "dataset": _part(get_dataset(dataset), dataset_params),
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
    domain_key: str | None,
) -> dict[str, Any]:
    """An evaluate trial's config: ``evaluator`` of the matrix scoring ``source`` (a train key
    or the real-data reference), with the dataset's domain network when the evaluator reads it."""
    ev_cls = evaluator_registry(evaluator).get(evaluator)
    econfig = {
        "schema": SCHEMA_VERSION,
        "kind": "evaluate",
        "source": source,
        "evaluator": _part(ev_cls, cfg.evaluator_params[evaluator]),
        "seed": seed,
        "device": device_type,
    }
    if "domain" in ev_cls.requires_dataset and domain_key:
        econfig["domain"] = domain_key
    return econfig


def domain_key_for(cfg: MatrixConfig, dataset: str) -> str | None:
    """The key of ``dataset``'s domain network trial in this matrix, or None when it has none."""
    from ganbench.datasets.domain import domain_config

    dparams = cfg.dataset_params[dataset]
    features = get_dataset(dataset)(**dparams).spec.features
    wants = any(
        "domain" in evaluator_registry(ev).get(ev).requires_dataset for ev in cfg.evaluators
    )
    return trial_key(domain_config(dataset, dparams)) if wants and "domain" in features else None


def expand(cfg: MatrixConfig, device_type: str) -> list[Trial]:
    """All trials of a matrix: domain networks, then training, then evaluations.

    An evaluation names the train trial it scores (``depends_on``) and, when its evaluator
    reads the dataset's domain network, that network's trial (``extra["domain"]``), whose
    key is then part of the evaluation's config.
    """
    from ganbench.datasets.domain import domain_config

    domains: list[Trial] = []
    trials: list[Trial] = []
    evaluations: list[Trial] = []
    for dataset in cfg.datasets:
        dparams = cfg.dataset_params[dataset]
        features = get_dataset(dataset)(**dparams).spec.features
        domain_key = None
        wants_domain = any(
            "domain" in evaluator_registry(ev).get(ev).requires_dataset for ev in cfg.evaluators
        )
        if wants_domain and "domain" in features:
            dcfg = domain_config(dataset, dparams)
            domain_key = trial_key(dcfg)
            labels = {"architecture": "domain network", "dataset": dataset, "seed": 0}
            domains.append(Trial(domain_key, "domain", dcfg, labels))
        sources: list[tuple[str, str | None, str | None, dict | None, frozenset[str]]] = []
        for seed in cfg.seeds:
            for arch in cfg.architectures:
                if cfg.excluded(arch, dataset) or seed not in cfg.seeds_for(arch):
                    continue
                arch_cls = get_architecture(cfg.base_architecture(arch))
                train = cfg.train_for(arch)
                variants = [("trained", train["steps"])]
                if "untrained" in cfg.references:
                    variants.append(("untrained", 0))
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
                    t = Trial(trial_key(tcfg), "train", tcfg, labels)
                    trials.append(t)
                    sources.append(
                        (reference, arch, t.key, {"train": t.key}, arch_cls.capabilities)
                    )
            if "real" in cfg.references:
                src = {"real": {"dataset": _part(get_dataset(dataset), dparams), "split": "train"}}
                sources.append(("real", None, None, src, frozenset()))
            for reference, arch, train_key, source, caps in sources:
                for ev in cfg.evaluators:
                    ev_cls = evaluator_registry(ev).get(ev)
                    econfig = evaluate_config(cfg, ev, source, seed, device_type, domain_key)
                    extra = {"domain": econfig["domain"]} if "domain" in econfig else {}
                    who = arch if arch else "the real-data reference"
                    labels = {
                        "architecture": arch or "real data",
                        "dataset": dataset,
                        "seed": seed,
                        "reference": reference,
                        "evaluator": ev,
                    }
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
