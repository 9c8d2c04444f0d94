"""The board's data files, beside the pages: ``results.csv`` (every number, one row per
architecture × dataset × seed × score, cost figures and domain networks included) and the
maintainers' bundle ``runs/<matrix>-<device>.json`` (the raw records of a view, from which
the board re-renders without the store).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganbench.board.cost_tables import COST_SCORES
from ganbench.board.view import ORIGIN_WORDS, MatrixView, short_commit
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score
from ganbench.run.bundles import BUNDLE_SCHEMA, RECORD_FIELDS, compact_envs
from ganbench.run.trials import SCHEMA_VERSION, Trial, domain_plan

# results.csv columns left to the bundles, where each trial's environment is recorded once
CSV_LEFT_TO_BUNDLES = ("device", "torch")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``results.csv`` from :func:`tidy_rows` of every view."""
    # the device and torch of each trial are in runs/*.json (join on trial_key): repeated on
    # every score's row they were a fifth of the file
    frame = pd.DataFrame(rows).drop(columns=list(CSV_LEFT_TO_BUNDLES), errors="ignore")
    frame.to_csv(path, index=False, float_format="%.10g")
    return path


def tidy_rows(view: MatrixView) -> list[dict[str, Any]]:
    """results.csv rows: one per architecture × dataset × seed × score (cost figures included)."""
    out = []
    for t in view.trials:
        rec = view.records.get(t.key)
        if rec is None:
            continue
        if t.kind == "domain":
            out.extend(_domain_rows(view, t, rec))
            continue
        base = _trial_columns(view, t, rec)
        if t.kind == "evaluate":
            out.extend(_score_rows(base, t.labels["evaluator"], rec))
        elif rec["status"] == "finished":
            out.extend(_cost_rows(base, rec))
    out.extend(_pinned_domain_rows(view))
    return out


def _trial_columns(view: MatrixView, t: Trial, rec: dict) -> dict[str, Any]:
    """The columns every results.csv row of one train or evaluate trial shares."""
    lab = t.labels
    env = rec.get("env") or {}
    return {
        "matrix": view.cfg.name,
        "device_type": view.device_type,
        "device": env.get("device"),
        "dataset": lab["dataset"],
        "architecture": lab["architecture"],
        "reference": lab["reference"],
        "steps": lab.get("steps"),  # a partial training's steps (``checkpoints``)
        "seed": lab["seed"],
        "status": rec["status"],
        "trial_key": t.key[:16],  # the full key is in the bundle (runs/*.json)
        "git_commit": short_commit(env.get("git_commit")),
        "torch": env.get("torch"),
        "origin": _origin(view, lab["architecture"]),
    }


def _score_rows(base: dict[str, Any], evaluator: str, rec: dict) -> list[dict[str, Any]]:
    """An evaluation's rows: one per score its evaluator declares (NaN where it has none)."""
    values = rec.get("scores") or {}
    return [
        base
        | {
            "evaluator": evaluator,
            "score": s.name,
            "value": values.get(s.name, np.nan),
            "direction": s.direction,
            "unit": s.unit,
            "error": rec.get("error"),
        }
        for s in _declared(evaluator)
    ]


def _declared(evaluator: str) -> list[Score]:
    """An evaluator's declared scores, one per name."""
    return list({s.name: s for s in evaluator_registry(evaluator).get(evaluator).scores}.values())


def _cost_rows(base: dict[str, Any], rec: dict) -> list[dict[str, Any]]:
    """A finished training's rows: one per cost figure it timed."""
    timings = rec.get("timings") or {}
    return [
        base
        | {
            "evaluator": "train",
            "score": s.name,
            "value": rec["timings"][s.name],
            "direction": s.direction,
            "unit": s.unit,
            "error": None,
        }
        for s in COST_SCORES
        if s.name in timings
    ]


def _origin(view: MatrixView, architecture: str) -> str:
    if architecture not in view.submitted:
        return "maintainers"
    return "submitted, " + ORIGIN_WORDS[view.mark(architecture)[0]]


def _domain_row(
    view: MatrixView, dataset: str, name: str, value: float, where: dict[str, Any]
) -> dict[str, Any]:
    """A results.csv row of one held-out score of a dataset's domain network; ``where``: the
    device, seed, status, trial key, git commit, torch, origin and error of the network."""
    return {
        "matrix": view.cfg.name,
        "device_type": view.device_type,
        "device": where["device"],
        "dataset": dataset,
        "architecture": "domain network",
        "reference": "",
        "seed": where["seed"],
        "status": where["status"],
        "trial_key": where["trial_key"],
        "git_commit": where["git_commit"],
        "torch": where["torch"],
        "origin": where["origin"],
        "evaluator": "domain",
        "score": name,
        "value": value,
        "direction": "higher",
        "unit": "",
        "error": where["error"],
    }


def _pinned_domain_rows(view: MatrixView) -> list[dict[str, Any]]:
    """results.csv rows of the shipped domain networks the view's evaluations read: their
    held-out scores, keyed by the weights' sha256."""
    rows = []
    for dataset in view.cfg.datasets:
        plan = domain_plan(view.cfg, dataset)
        if plan.directory is None:
            continue
        meta = json.loads((Path(plan.directory) / "domain.json").read_text())
        where = {
            "device": "CPU",
            "seed": 0,
            "status": "finished",
            "trial_key": f"weights sha256 {meta['sha256']}",
            "git_commit": None,
            "torch": meta["trained"]["torch"],
            "origin": "pinned",
            "error": None,
        }
        rows += [_domain_row(view, dataset, n, v, where) for n, v in meta["metrics"].items()]
    return rows


def _domain_rows(view: MatrixView, t: Trial, rec: dict) -> list[dict[str, Any]]:
    """results.csv rows of a domain network trained in the run: its held-out accuracies and R²."""
    env = rec.get("env") or {}
    where = {
        "device": env.get("device"),
        "seed": t.labels.get("seed", 0),
        "status": rec["status"],
        "trial_key": t.key,
        "git_commit": env.get("git_commit"),
        "torch": env.get("torch"),
        "origin": "maintainers",
        "error": rec.get("error"),
    }
    return [
        _domain_row(view, t.labels["dataset"], n, v, where)
        for n, v in (rec.get("scores") or {}).items()
    ]


def write_bundle(view: MatrixView, out: Path) -> Path:
    """The maintainers' own records of the matrix (submissions stay in their own bundles)."""
    path = out / "runs" / f"{view.slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {k: view.maintainers[t.key].get(k) for k in RECORD_FIELDS}
        for t in sorted(view.own, key=lambda t: t.key)
        if t.key in view.maintainers
    ]
    envs, records = compact_envs(records)
    bundle = {
        "schema": BUNDLE_SCHEMA,
        "trial_schema": SCHEMA_VERSION,
        "origin": "maintainers",
        "matrix": view.cfg.name,
        "device_type": view.device_type,
        "envs": envs,
        "records": records,
    }
    # one record per line: compact (the bundle is committed) and still a readable diff
    head = {k: v for k, v in bundle.items() if k != "records"}
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]
    text = json.dumps(head, sort_keys=True)[:-1] + ', "records": [\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, encoding="utf-8")
    return path
