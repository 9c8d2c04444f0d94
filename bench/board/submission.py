"""The submission gate: result bundles of submitted architectures (written by ``ganbench
export``, :mod:`ganbench.run.bundles`) checked and merged by ``ganbench leaderboard``.

A submitter runs a shipped matrix for their architecture alone (``ganbench run smoke --plugin
my_gan.py --architecture mygan``), so every trial has the key the maintainers' matrix would
give it. The bundle carries those records. The leaderboard checks, without the submitter's
code, that each record's key is the hash of its config and that the config is exactly what
the claimed matrix prescribes for that architecture (datasets, seeds, budget, evaluators and
their parameters, device type, schema); a bundle that fails any check is refused whole. Its
rows are marked as not reproduced until the maintainers' own store holds the same keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganbench.run.bundles import BundleRefused
from ganbench.run.config import MatrixConfig
from ganbench.run.evaluate import evaluate_config
from ganbench.run.train import train_config
from ganbench.run.trials import SCHEMA_VERSION, Trial, domain_plan, trial_key


@dataclass
class Submission:
    """A checked submission: one architecture's trials of one matrix on one device type."""

    path: Path
    architecture: str
    trials: list[Trial] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)


def check_submission(bundle: dict[str, Any], path: Path, cfg: MatrixConfig) -> Submission:
    """The bundle's trials, rebuilt from their configs, if every one is a trial of ``cfg``.

    Raises :class:`BundleRefused` naming the first mismatch otherwise."""
    where = f"submitted bundle {path.name}"
    arch = bundle.get("architecture")
    device_type = bundle.get("device_type")
    if not isinstance(arch, str) or not arch:
        raise BundleRefused(f"{where}: names no architecture")
    if arch in cfg.architectures:
        raise BundleRefused(
            f"{where}: {arch!r} is already an architecture of matrix {cfg.name!r}; a submission "
            "adds a new one (the maintainers' own runs hold this one)"
        )
    records = bundle.get("records")
    if not isinstance(records, list) or not records:
        raise BundleRefused(f"{where}: holds no trial records")
    trains = [r for r in records if isinstance(r, dict) and r.get("kind") == "train"]
    evals = [r for r in records if isinstance(r, dict) and r.get("kind") == "evaluate"]
    if len(trains) + len(evals) != len(records):
        raise BundleRefused(f"{where}: a record is neither a train nor an evaluate trial")
    for rec in trains + evals:
        _check_record(rec, device_type, where)
    sub = Submission(path, arch)
    train_labels = _add_trains(sub, trains, cfg, where)
    _add_evaluations(sub, evals, train_labels, cfg, device_type, where)
    return sub


def _check_record(rec: dict, device_type: Any, where: str) -> None:
    """A record must carry the hash of its config, and have run on the bundle's device type,
    with this schema, to an end (finished, failed or n/a)."""
    config = rec.get("config")
    if not isinstance(config, dict):
        raise BundleRefused(f"{where}: a record has no config")
    try:
        key = trial_key(config)
    except (TypeError, ValueError) as exc:
        raise BundleRefused(f"{where}: a record's config is not canonical JSON ({exc})") from None
    if key != rec.get("key"):
        raise BundleRefused(
            f"{where}: record {str(rec.get('key'))[:12]} does not carry the hash of its "
            "config (edited after the run?)"
        )
    if config.get("device") != device_type or config.get("schema") != SCHEMA_VERSION:
        raise BundleRefused(
            f"{where}: trial {key[:12]} ran on {config.get('device')!r} with schema "
            f"{config.get('schema')!r}; the bundle claims {device_type!r}, schema {SCHEMA_VERSION}"
        )
    if rec.get("status") not in ("finished", "failed", "n/a"):
        raise BundleRefused(f"{where}: trial {key[:12]} has status {rec.get('status')!r}")


def _add_trains(
    sub: Submission, trains: list[dict], cfg: MatrixConfig, where: str
) -> dict[str, dict[str, Any]]:
    """Add the submission's train trials, each checked to be the matrix's for it, all of
    one architecture built by the same code and parameters; returns their labels by key."""
    train_labels: dict[str, dict[str, Any]] = {}
    arch_parts = set()
    for rec in trains:
        config = rec["config"]
        part = config.get("architecture") or {}
        arch_parts.add(json.dumps(part, sort_keys=True))
        labels = _expected_train(cfg, config, part, sub.architecture, where)
        train_labels[rec["key"]] = labels
        sub.trials.append(Trial(rec["key"], "train", config, labels))
        sub.records[rec["key"]] = rec | {"labels": labels}
    if len(arch_parts) != 1 or json.loads(next(iter(arch_parts))).get("name") != sub.architecture:
        raise BundleRefused(
            f"{where}: its train trials must all build architecture {sub.architecture!r} with "
            "the same code and parameters"
        )
    return train_labels


def _add_evaluations(
    sub: Submission,
    evals: list[dict],
    train_labels: dict[str, dict[str, Any]],
    cfg: MatrixConfig,
    device_type: Any,
    where: str,
) -> None:
    """Add the submission's evaluations, each of a model trained in the bundle and checked
    to be the evaluation the matrix prescribes for it."""
    for rec in evals:
        config = rec["config"]
        source = config.get("source") or {}
        labels = train_labels.get(source.get("train"))
        if labels is None:
            raise BundleRefused(
                f"{where}: evaluation {rec['key'][:12]} scores a model whose train trial is not in the bundle"
            )
        ev = (config.get("evaluator") or {}).get("name")
        if ev not in cfg.evaluators:
            raise BundleRefused(
                f"{where}: evaluator {ev!r} is not in matrix {cfg.name!r} ({', '.join(cfg.evaluators)})"
            )
        expected = evaluate_config(
            cfg, ev, source, labels["seed"], device_type, _domain_expected(cfg, labels, config)
        )
        if expected != config:
            raise BundleRefused(
                f"{where}: evaluation {rec['key'][:12]} ({ev}) does not match matrix "
                f"{cfg.name!r}: {_differs(expected, config)}"
            )
        elabels = labels | {"evaluator": ev}
        train_key = source["train"]
        sub.trials.append(Trial(rec["key"], "evaluate", config, elabels, depends_on=train_key))
        sub.records[rec["key"]] = rec | {"labels": elabels}


def _domain_expected(cfg: MatrixConfig, labels: dict, config: dict) -> dict | None:
    """The domain network a submitted evaluation must name: the dataset's pinned one; for a
    dataset that trains its own, the submitter's network, named by a weights sha256."""
    plan = domain_plan(cfg, labels["dataset"])
    if plan.trial is None:
        return plan.ref
    got = config.get("domain")
    ok = (
        isinstance(got, dict)
        and set(got) == {"version", "weights"}
        and got["version"] == plan.ref["version"]
        and isinstance(got["weights"], str)
        and len(got["weights"]) == 64
        and all(c in "0123456789abcdef" for c in got["weights"])
    )
    return got if ok else plan.ref


def _expected_train(
    cfg: MatrixConfig, config: dict, part: dict, arch: str, where: str
) -> dict[str, Any]:
    """Labels of a submitted train trial, after checking its config is the matrix's for it."""
    dataset = (config.get("dataset") or {}).get("name")
    seed = config.get("seed")
    if dataset not in cfg.datasets:
        raise BundleRefused(
            f"{where}: dataset {dataset!r} is not in matrix {cfg.name!r} ({', '.join(cfg.datasets)})"
        )
    if seed not in cfg.seeds:
        raise BundleRefused(
            f"{where}: seed {seed!r} is not a seed of matrix {cfg.name!r} {cfg.seeds}"
        )
    steps = (config.get("budget") or {}).get("steps")
    references = {cfg.train["steps"]: "trained"}
    if "untrained" in cfg.references:
        references.setdefault(0, "untrained")
    if steps not in references:
        raise BundleRefused(
            f"{where}: a train trial of {steps!r} steps; matrix {cfg.name!r} trains "
            f"{cfg.train['steps']} steps (0 for its untrained control)"
        )
    expected = train_config(
        part,
        part.get("params", {}),
        dataset,
        cfg.dataset_params[dataset],
        seed,
        steps,
        cfg.train,
        config.get("device"),
    )
    if expected != config:
        raise BundleRefused(
            f"{where}: train trial {trial_key(config)[:12]} does not match matrix {cfg.name!r}: "
            f"{_differs(expected, config)}"
        )
    return {"architecture": arch, "dataset": dataset, "seed": seed, "reference": references[steps]}


def _differs(expected: dict, got: dict) -> str:
    keys = sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))
    return "differs in " + ", ".join(
        f"{k} (matrix: {json.dumps(expected.get(k), sort_keys=True)[:80]}, bundle: "
        f"{json.dumps(got.get(k), sort_keys=True)[:80]})"
        for k in keys[:2]
    )
