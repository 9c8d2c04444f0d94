"""Rendering the leaderboard from the store and from result bundles.

For each matrix config and device type, the trials of the matrix are looked up by key
(so results of different matrices or devices are never mixed), aggregated over seeds,
and written as ``README.md``, ``results.csv``, ``figures/`` and ``runs/<matrix>-<device>.json``
(the raw records, so the leaderboard can be re-rendered without the store), and
``index.html`` (the same tables, sortable, with a figure gallery; see ``ganbench.board.html``).
Submitted bundles (``runs/submitted-*.json``, written by ``ganbench export``) are checked
against the matrix they claim (``ganbench.board.submission``) and shown as rows marked † until
the maintainers' own runs hold the same trial keys.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from ganbench.board.figures import Figure, explainer_caption, real_grid, store_png
from ganbench.board.formatting import cost_text, cost_unit, values_text, values_title
from ganbench.board.html import write_page
from ganbench.board.reproduce import Summary, compare
from ganbench.board.submission import Submission, check_submission
from ganbench.board.validity import (
    Entry,
    Gate,
    RankColumn,
    Ranked,
    combine,
    control_gate,
    margin,
    monotonicity,
    quality_gate,
    rank,
    rank_agreement,
    separation,
)
from ganbench.core.errors import GanbenchError
from ganbench.core.evaluator import evaluator_family
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import OTHER, QUALITY_GROUPS, Score
from ganbench.run.bundles import (
    BUNDLE_SCHEMA,
    RECORD_FIELDS,
    BundleRefused,
    compact_envs,
    read_bundle,
)
from ganbench.run.config import TRAIN_DEFAULTS, MatrixConfig
from ganbench.run.config_load import load_config, shipped_configs
from ganbench.run.execute import SAMPLE_GRID
from ganbench.run.store import DONE, Store
from ganbench.run.trials import (
    CHECKPOINT,
    SCHEMA_VERSION,
    Trial,
    domain_plan,
    domain_weights_of,
    expand,
)

DEVICE_TYPES = ("cuda", "cpu")
# how a submitted architecture's rows are marked
REPRODUCED, DIFFERS, NOT_REPRODUCED = "✓", "✗", "†"
REPRODUCTION_NOTE = (
    "Same key, same numbers: a trial's key names the declared versions of the code and the "
    "sha256 of the pinned feature networks that produced it, so a key run on another machine "
    "must give the same numbers, up to each score's declared tolerance. Rows submitted by "
    f"others are marked {REPRODUCED} reproduced (the maintainers ran the same keys and every "
    f"compared score agrees within its tolerance), {DIFFERS} differs (hover: the largest "
    f"difference) or {NOT_REPRODUCED} not yet reproduced."
)

# Cost figures of train trials, declared once like every score.
COST_SCORES = (
    Score("train_s", "lower", "wall-clock seconds of the whole training loop", "s"),
    Score(
        "s_per_step_median",
        "lower",
        "median seconds per training step (G and D update), warm-up excluded",
        "s",
    ),
    Score("images_per_s", "higher", "real images consumed per second of training", "img/s"),
    Score(
        "generate_images_per_s",
        "higher",
        "images generated per second in eval mode, batch 256",
        "img/s",
    ),
    Score(
        "peak_mem_mb",
        "lower",
        "peak memory while training: CUDA max allocated, or CPU resident set",
        "MiB",
    ),
    Score("params_generator", "none", "parameters in the generator", "", primary=False),
    Score("params_discriminator", "none", "parameters in the discriminator", "", primary=False),
)


@dataclass
class Row:
    """One row of a table: an architecture or a control (untrained network, real data)."""

    architecture: str
    reference: str  # "trained" | "untrained" | "real"
    submitted: str | None = None  # the bundle file of a submitted architecture
    # a submission's reproduction: "✓" reproduced, "✗" differs, "†" not yet reproduced
    mark: str = ""
    mark_title: str = ""  # what hovering the mark tells (the largest difference)

    @property
    def label(self) -> str:
        if self.reference == "real":
            return "real data (reference)"
        mark = f" {self.mark}" if self.submitted and self.mark else ""
        if self.reference == "untrained":
            return f"{self.architecture}{mark} (untrained)"
        return self.architecture + mark

    @property
    def title(self) -> str:
        return self.mark_title if self.submitted else ""

    @property
    def is_control(self) -> bool:
        return self.reference != "trained"


@dataclass
class Column:
    """A table column; score columns carry their declaration (direction, meaning, unit)."""

    header: str
    evaluator: str | None = None
    score: Score | None = None
    numeric: bool = True
    # a directional score column that failed its validity gate: greyed, never bold, left out
    # of every ranking; ``note`` says why
    unranked: bool = False
    note: str = ""


@dataclass
class Cell:
    """A table cell: the text shown, the number it sorts by, and what hovering tells."""

    text: str
    sort: float | None = None
    title: str = ""
    bold: bool = False
    status: str = ""  # "" | "n/a" | "failed" | "missing"
    unranked: bool = False  # in a column that failed its validity gate (shown greyed)


@dataclass
class TableRow:
    label: str
    control: bool
    cells: list[Cell]


@dataclass
class Table:
    columns: list[Column]
    rows: list[TableRow]
    # lines shown under the table: what was left out of it, and why
    notes: list[str] = field(default_factory=list)


@dataclass
class Sources:
    """What the leaderboard is rendered from: the maintainers' records (their store and the
    bundles the renderer wrote) by key, and submitted bundles, still to be checked per matrix."""

    records: dict[str, dict] = field(default_factory=dict)
    # each maintainers' bundle's own records by key (file name -> key -> record), before the
    # store's or another bundle's were laid over them
    bundled: dict[str, dict[str, dict]] = field(default_factory=dict)
    submissions: list[tuple[Path, dict]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def maintainers_bundle_names(configs: list[str]) -> set[str]:
    """The only file names that may hold the maintainers' own records: the bundles
    :func:`write_bundle` writes, ``<matrix>-<device>.json`` for the rendered matrices."""
    return {f"{load_config(name).name}-{dt}.json" for name in configs for dt in DEVICE_TYPES}


def collect(store_path: Path, bundle_dir: Path, own_names: set[str] | None = None) -> Sources:
    """Render bundles first, then the store (newer) over them; submissions kept apart.

    Only the files named in ``own_names`` (default: every file not named ``submitted-*``)
    may hold the maintainers' records. Any other bundle is a submission whatever its
    ``origin`` says: a file that claims to be the maintainers' is checked like every
    submission (and refused where it does not pass), never trusted."""
    src = Sources()
    for path in sorted(bundle_dir.glob("*.json")) if bundle_dir.is_dir() else []:
        own = (
            path.name in own_names
            if own_names is not None
            else not path.name.startswith("submitted-")
        )
        try:
            bundle = read_bundle(path)
        except BundleRefused as exc:
            if not own:
                src.refused.append(str(exc))
                continue
            raise
        if not own or bundle.get("origin") == "submission":
            if bundle.get("origin") != "submission":
                src.refused.append(
                    f"result bundle {path.name}: claims origin {bundle.get('origin')!r}, but only "
                    "the maintainers' own files (<matrix>-<device>.json) hold their records; "
                    "checked as a submission"
                )
                bundle = bundle | {"origin": "submission"}
            src.submissions.append((path, bundle))
            continue
        for rec in bundle.get("records", []):
            rec = rec | {"origin": "bundle"}
            src.records[rec["key"]] = src.bundled.setdefault(path.name, {})[rec["key"]] = rec
    if store_path.exists():
        store = Store(store_path)
        for rec in store.records():
            if rec.status in ("finished", "failed", "n/a"):
                src.records[rec.key] = rec.as_dict() | {"origin": "store"}
        store.close()
    return src


def keep_committed(
    own: list[Trial], records: dict[str, dict], bundled: dict[str, dict]
) -> dict[str, dict]:
    """A matrix's committed records stay until the store holds a whole run of the matrix.

    Trials are shared by key across matrices (the quick look's real-data rows can be the
    smoke matrix's), so a store that ran a few of this matrix's keys for another matrix, or
    another matrix's bundle holding the same key, would otherwise lay its record, with its own
    commit and timings, over the committed run's. Where the store has a record of every trial
    of the matrix, its records replace the bundle's (``bundled``: this matrix's own bundle);
    otherwise a finished or n/a bundle record is kept, and the rest fills only what the bundle
    lacks or did not finish."""
    if all(records.get(t.key, {}).get("origin") == "store" for t in own):
        return records
    kept = dict(records)
    for key in records:
        old = bundled.get(key)
        if old is not None and old["status"] in DONE:
            kept[key] = old
    return kept


def short_commit(commit: str | None) -> str:
    """The first 12 hex digits of a commit, keeping its ``-dirty`` mark (uncommitted changes)."""
    if not commit:
        return "unknown"
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + ("-dirty" if dirty else "")


class MatrixView:
    """The trials of one matrix on one device type, with their records, plus the checked
    submissions that claim this matrix and device."""

    def __init__(
        self,
        cfg: MatrixConfig,
        device_type: str,
        records: dict[str, dict],
        submissions: list[tuple[Path, dict]] = (),
        bundled: dict[str, dict] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device_type = device_type
        self.own: list[Trial] = expand(cfg, device_type, domain_weights_of(records))
        self.trials: list[Trial] = list(self.own)
        self.records = keep_committed(
            self.own, {t.key: records[t.key] for t in self.own if t.key in records}, bundled or {}
        )
        # the maintainers' own records, the only ones their bundle is written from
        self.maintainers = dict(self.records)
        self.submitted: dict[str, Submission] = {}
        # per submitted architecture: the maintainers' records compared with the submitted ones
        self.reproduction: dict[str, Summary] = {}
        self.refused: list[str] = []
        for path, bundle in submissions:
            if bundle.get("matrix") != cfg.name or bundle.get("device_type") != device_type:
                continue
            try:
                sub = check_submission(bundle, path, cfg)
            except BundleRefused as exc:
                self.refused.append(str(exc))
                continue
            if sub.architecture in self.submitted:
                self.refused.append(
                    f"submitted bundle {path.name}: {sub.architecture!r} is also submitted by "
                    f"{self.submitted[sub.architecture].path.name}; keep one"
                )
                continue
            self.submitted[sub.architecture] = sub
            self.trials.extend(sub.trials)
            keys = [t.key for t in sub.trials]
            self.reproduction[sub.architecture] = Summary(compare(records, sub.records, keys))
            for t in sub.trials:
                self.records[t.key] = records.get(t.key) or sub.records[t.key]

    def mark(self, architecture: str) -> tuple[str, str]:
        """A submitted architecture's mark and its hover text: ✓ the maintainers' runs of the
        same keys agree within every compared score's tolerance, ✗ they differ, † they have
        not run every key yet."""
        summary = self.reproduction.get(architecture)
        if summary is None:
            return "", ""
        if summary.differing:
            bad = max(summary.differing, key=lambda a: a.worst.excess if a.worst else 0)
            detail = bad.worst.words() if bad.worst else bad.note
            return DIFFERS, (
                f"differs from the maintainers' run in {len(summary.differing)} of "
                f"{len(summary.agreements)} trials; largest: {detail}"
            )
        if summary.missing:
            return NOT_REPRODUCED, (
                f"not yet reproduced: the maintainers' runs lack {len(summary.missing)} of "
                f"{len(summary.agreements)} trials"
            )
        worst = summary.worst
        detail = f"; largest difference: {worst.words()}" if worst else ""
        compared = sum(len(a.compared) for a in summary.agreements)
        return REPRODUCED, (
            f"reproduced: the maintainers ran the same {len(summary.agreements)} trial keys and "
            f"all {compared} compared scores agree within their tolerances{detail}"
        )

    @property
    def empty(self) -> bool:
        """No finished train or evaluation on this device (domain networks are device-free:
        they alone do not make a device's section)."""
        return not any(
            r["status"] == "finished" and r["kind"] != "domain" for r in self.records.values()
        )

    @property
    def slug(self) -> str:
        return f"{self.cfg.name}-{self.device_type}"

    def _own_envs(self) -> list[dict]:
        return [
            self.records[t.key]["env"]
            for t in self.own
            if t.key in self.records and self.records[t.key].get("env")
        ]

    def devices(self) -> list[str]:
        """Each device with its software: torch, and on a GPU the driver and CUDA versions."""

        def words(env: dict) -> str:
            soft = [f"torch {env['torch']}"] if env.get("torch") else []
            if env.get("device_type") == "cuda":
                soft += [f"driver {env['driver']}"] if env.get("driver") else []
                soft += [f"CUDA {env['cuda']}"] if env.get("cuda") else []
            return f"{env.get('device', '?')}" + (f" ({', '.join(soft)})" if soft else "")

        return sorted({words(env) for env in self._own_envs()})

    def commits(self) -> list[str]:
        """Short commits of the records; ``-dirty``: run from a work tree with uncommitted changes."""
        return sorted({short_commit(env.get("git_commit")) for env in self._own_envs()})

    def rows(self, dataset: str) -> list[Row]:
        seen: dict[tuple[str, str], Row] = {}
        for t in self.trials:
            if (
                t.labels["dataset"] == dataset
                and t.kind != "domain"
                and t.labels["reference"] != CHECKPOINT
            ):
                lab = t.labels
                arch = lab["architecture"] if lab["reference"] != "real" else "real data"
                sub = self.submitted.get(arch)
                seen.setdefault(
                    (arch, lab["reference"]),
                    Row(arch, lab["reference"], sub.path.name if sub else None, *self.mark(arch)),
                )
        order = {"trained": 0, "untrained": 1, "real": 2}
        return sorted(seen.values(), key=lambda r: (order[r.reference], r.architecture))

    def cells(
        self, dataset: str, row: Row, kind: str, evaluator: str | None = None
    ) -> list[tuple[Trial, dict | None]]:
        out = []
        for t in self.trials:
            lab = t.labels
            if t.kind != kind or lab["dataset"] != dataset or lab["reference"] != row.reference:
                continue
            if row.reference != "real" and lab["architecture"] != row.architecture:
                continue
            if evaluator is not None and lab.get("evaluator") != evaluator:
                continue
            out.append((t, self.records.get(t.key)))
        return out

    def evaluators_of(self, family: str) -> list[str]:
        return [ev for ev in self.cfg.evaluators if evaluator_family(ev) == family]


def score_columns(
    cfg: MatrixConfig, evaluators: list[str] | None = None
) -> list[tuple[str, Score]]:
    cols = []
    for ev in cfg.evaluators if evaluators is None else evaluators:
        cls = evaluator_registry(ev).get(ev)
        cols.extend((ev, s) for s in cls.scores if s.primary)
    return cols


def _score_cell(view: MatrixView, dataset: str, row: Row, ev: str, score: Score) -> Cell:
    cells = view.cells(dataset, row, "evaluate", ev)
    done = [
        (t, rec)
        for t, rec in cells
        if rec and rec["status"] == "finished" and score.name in (rec["scores"] or {})
    ]
    values = [rec["scores"][score.name] for _, rec in done]
    if values:
        text, sort = values_text(values, score)
        if len(values) < len(cells):
            text += f" ({len(values)}/{len(cells)} seeds)"
        title = values_title(values, [t.labels["seed"] for t, _ in done], score)
        if score.control:
            ctl = [rec["scores"].get(score.control) for _, rec in done]
            ctl = [c for c in ctl if c is not None]
            if ctl:
                text += f" (control {values_text(ctl, score)[0]})"
                title += f"; {score.control} (control): {float(np.mean(ctl)):.4g}"
        return Cell(text, sort, title)
    statuses = {rec["status"] if rec else "missing" for _, rec in cells}
    if "n/a" in statuses:
        why = next(rec.get("error") for _, rec in cells if rec and rec["status"] == "n/a")
        return Cell("n/a", None, why or "not applicable", status="n/a")
    if "failed" in statuses:
        errors = [rec["error"] for _, rec in cells if rec and rec["status"] == "failed"]
        return Cell("failed", None, errors[0] or "failed", status="failed")
    return Cell(
        "not run", None, "no record of this trial in the store or the bundles", status="missing"
    )


def seed_values(
    view: MatrixView, dataset: str, row: Row | None, ev: str, score: Score
) -> tuple[list[float], list[float]]:
    """Per-seed values of ``score`` in one row (finished trials only), and of its control
    where the score declares one."""
    values: list[float] = []
    controls: list[float] = []
    if row is None:
        return values, controls
    for _, rec in view.cells(dataset, row, "evaluate", ev):
        scores = (rec or {}).get("scores") or {}
        if rec and rec["status"] == "finished" and score.name in scores:
            values.append(scores[score.name])
            if score.control and score.control in scores:
                controls.append(scores[score.control])
    return values, controls


def column_kind(ev: str) -> str:
    """How a column is validated and ranked: "quality" (metrics), "generator" (what a
    generator learned: dissection, directions, intrinsic explanations), "discriminator" (an
    attribution method explaining D's logit: ranked against the other methods)."""
    family = evaluator_family(ev)
    if family == "quality":
        return "quality"
    if family == "explainability" and evaluator_registry(ev).get(ev).explains == "discriminator":
        return "discriminator"
    return "generator"


def _rows_by_reference(view: MatrixView, dataset: str):
    rows = view.rows(dataset)
    trained = [r for r in rows if r.reference == "trained"]
    untrained = {r.architecture: r for r in rows if r.reference == "untrained"}
    real = next((r for r in rows if r.reference == "real"), None)
    return trained, untrained, real


def column_gates(view: MatrixView, dataset: str) -> dict[str, Gate]:
    """The validity gate of every directional primary column on ``dataset``
    (``ganbench.board.validity``): quality scores must put real data beyond every untrained
    control; attribution scores must beat their random control; scores of what a generator
    learned must put trained networks above their untrained selves (and beat their random
    control where they declare one). Costs never rank."""
    trained, untrained, real = _rows_by_reference(view, dataset)
    gates: dict[str, Gate] = {}
    for ev, score in score_columns(view.cfg):
        col = f"{ev}/{score.name}"
        if score.direction == "none":
            continue
        if score.cost:
            gates[col] = Gate(False, "a cost: shown, never ranked")
            continue
        values = {r.architecture: seed_values(view, dataset, r, ev, score) for r in trained}
        base = {
            a: seed_values(view, dataset, r, ev, score)[0]
            for a, r in untrained.items()
            if a in values
        }
        kind = column_kind(ev)
        if kind == "quality":
            real_values = seed_values(view, dataset, real, ev, score)[0]
            gates[col] = quality_gate(
                real_values, {a: v for a, v in base.items() if v}, score.direction
            )
            continue
        with_control = {a: (v, c) for a, (v, c) in values.items()}
        if kind == "discriminator":
            if not score.control:
                gates[col] = Gate(False, "declares no random control to validate it against")
            else:
                gates[col] = control_gate(with_control, score.direction, "its random control")
            continue
        learned = control_gate(
            {a: (values[a][0], b) for a, b in base.items()},
            score.direction,
            "the same network untrained",
        )
        if score.control:
            gates[col] = combine(
                control_gate(with_control, score.direction, "its random control"), learned
            )
        else:
            gates[col] = learned
    return gates


def score_table(
    view: MatrixView,
    dataset: str,
    evaluators: list[str],
    gates: dict[str, Gate],
    ranking: dict[str, Ranked] | None = None,
    keep: set[tuple[str, str]] | None = None,
) -> Table | None:
    """Rows × primary scores of ``evaluators`` (those in ``keep`` where given), best in bold among the architectures in the
    columns that passed their validity gate (the others greyed, with the reason on hover),
    and each architecture's rank interval where ``ranking`` is given. Rows whose every cell is
    ``n/a`` are left out."""
    columns = score_columns(view.cfg, evaluators)
    if keep is not None:
        columns = [(ev, s) for ev, s in columns if (ev, s.name) in keep]
    if not columns:
        return None
    rows = view.rows(dataset)
    cells: dict[int, list[Cell]] = {}
    means: dict[int, dict[str, float]] = defaultdict(dict)
    for i, row in enumerate(rows):
        cells[i] = []
        for ev, score in columns:
            cell = _score_cell(view, dataset, row, ev, score)
            gate = gates.get(f"{ev}/{score.name}")
            cell.unranked = gate is not None and not gate.ranked
            cells[i].append(cell)
            if cell.sort is not None:
                means[i][f"{ev}/{score.name}"] = cell.sort
    # best in bold among the architectures (controls are context, not contenders), in the
    # columns that may rank
    for c, (ev, score) in enumerate(columns):
        col = f"{ev}/{score.name}"
        if score.direction == "none" or not (gates.get(col) and gates[col].ranked):
            continue
        have = {
            i: means[i][col] for i, r in enumerate(rows) if not r.is_control and col in means[i]
        }
        if have:
            best = max(have.values()) if score.direction == "higher" else min(have.values())
            for i, v in have.items():
                cells[i][c].bold = v == best
    keep = [i for i in range(len(rows)) if any(c.status != "n/a" for c in cells[i])]
    # an untrained control is shown only beside its trained network: alone it compares nothing
    contenders = {rows[i].architecture for i in keep if not rows[i].is_control}
    notes = []
    for i in [i for i in keep if rows[i].reference == "untrained"]:
        if rows[i].architecture in contenders:
            continue
        keep.remove(i)
        trained = next(
            (
                r
                for r in rows
                if r.reference == "trained" and r.architecture == rows[i].architecture
            ),
            None,
        )
        why = "it has no trained row"
        if trained is not None:
            j = rows.index(trained)
            reasons = [c.title for c in cells[j] if c.status in ("n/a", "failed") and c.title]
            why = (
                f"the trained network's cells are n/a or failed ({reasons[0]})" if reasons else why
            )
        notes.append(f"{rows[i].label} is left out: {why}.")
    if not keep or all(rows[i].is_control for i in keep):
        return None
    header = []
    for ev, s in columns:
        gate = gates.get(f"{ev}/{s.name}")
        unranked = gate is not None and not gate.ranked
        header.append(
            Column(
                f"{s.name} {s.arrow}".strip() + (" (unranked)" if unranked else ""),
                ev,
                s,
                unranked=unranked,
                note=gate.reason if gate is not None else "",
            )
        )
    out = Table(
        [Column("architecture", numeric=False), Column("seeds")]
        + header
        + ([Column("rank ↓")] if ranking is not None else []),
        [],
        notes,
    )
    for i in keep:
        row = rows[i]
        evals = view.cells(dataset, row, "evaluate")
        seeds = len({t.labels["seed"] for t, rec in evals if rec and rec["status"] == "finished"})
        extra = []
        if ranking is not None:
            r = ranking.get(row.label)
            extra = [_rank_cell(r, ranking) if r else Cell("" if row.is_control else "–")]
        out.rows.append(
            TableRow(
                row.label,
                row.is_control,
                [Cell(row.label, title=row.title), Cell(str(seeds), seeds), *cells[i], *extra],
            )
        )
    return out


def drop_uninformative(table: Table, min_rows: int = 1) -> tuple[Table | None, list[str]]:
    """``table`` without the score columns that carry nothing: n/a in every row, the same
    value in every row, or a value in fewer than ``min_rows`` contender rows. Returns the
    table (None when no score column is left) and one phrase per column left out, saying why.
    A column with a failure is always kept: the failure must show."""
    keep, dropped = [], []
    for c, col in enumerate(table.columns):
        if col.score is None:
            keep.append(c)
            continue
        cells = [r.cells[c] for r in table.rows]
        valued = [x for x in cells if x.sort is not None]
        contenders = [r for r in table.rows if not r.control and r.cells[c].sort is not None]
        if any(x.status == "failed" for x in cells):
            keep.append(c)
        elif not valued:
            why = next((x.title for x in cells if x.status == "n/a" and x.title), "no value")
            dropped.append(f"`{col.score.name}` (n/a in every row: {why})")
        elif len(contenders) < min_rows:
            who = ", ".join(r.label for r in contenders) or "no architecture"
            dropped.append(f"`{col.score.name}` (a value for {who} only)")
        elif len(valued) > 1 and len({x.text for x in valued}) == 1 and len(valued) == len(cells):
            dropped.append(f"`{col.score.name}` ({valued[0].text} in every row)")
        else:
            keep.append(c)
    if not any(table.columns[c].score is not None for c in keep):
        return None, dropped
    return (
        Table(
            [table.columns[c] for c in keep],
            [TableRow(r.label, r.control, [r.cells[c] for c in keep]) for r in table.rows],
            table.notes,
        ),
        dropped,
    )


def left_out_note(dropped: list[str]) -> str:
    return (
        "Left out, as they tell no architecture from another here: "
        + "; ".join(dropped)
        + (". Their numbers are in results.csv.")
    )


def quality_tables(
    view: MatrixView, dataset: str, gates: dict[str, Gate]
) -> tuple[list[tuple[str, str, Table]], list[str]]:
    """The sample-quality scores as one table per group the scores declare
    (``ganbench.core.scores.QUALITY_GROUPS``), without the columns that carry nothing; returns
    (group, what it asks, table) and the columns left out."""
    groups: dict[str, list[str]] = defaultdict(list)
    order = list(QUALITY_GROUPS) + [OTHER]
    for ev in view.evaluators_of("quality"):
        cls = evaluator_registry(ev).get(ev)
        for s in cls.scores:
            if s.primary:
                groups[cls.group_of(s) or OTHER].append((ev, s.name))
    out, dropped = [], []
    for group in sorted(groups, key=lambda g: order.index(g) if g in order else len(order)):
        names = set(groups[group])
        table = score_table(view, dataset, view.evaluators_of("quality"), gates, keep=names)
        if table is None:
            continue
        table, gone = drop_uninformative(table, min_rows=2)
        dropped += gone
        if table is not None:
            out.append((group, QUALITY_GROUPS.get(group, ""), table))
    return out, dropped


def _rank_cell(r: Ranked, ranking: dict[str, Ranked]) -> Cell:
    text = r.rank_words()
    title = (
        f"rank {r.rank} (95% bootstrap interval {r.rank_words()}); mean win rate {r.rate:.2f} "
        f"[{r.rate_low:.2f}, {r.rate_high:.2f}] over {r.columns} columns"
    )
    if r.tied_with:
        text += " (tie)"
        title += "; tied with " + ", ".join(r.tied_with)
    return Cell(text, r.rank, title)


def explainer_tables(
    view: MatrixView, dataset: str, gates: dict[str, Gate], family: str = "explainability"
) -> list[tuple[str, str, Table]]:
    """One table per evaluator of ``family``: (name, its one-line doc, table), so that the
    explainer × score columns stay readable; columns that carry nothing and empty tables are
    left out (a note under the table names the columns)."""
    out = []
    for ev in view.evaluators_of(family):
        table = score_table(view, dataset, [ev], gates)
        if table is None:
            continue
        table, dropped = drop_uninformative(table)
        if table is None:
            continue
        if dropped:
            table.notes.append(left_out_note(dropped))
        doc = (evaluator_registry(ev).get(ev).__doc__ or "").strip().split("\n\n")[0]
        out.append((ev, " ".join(doc.replace("``", "`").replace(":mod:", "").split()), table))
    return out


def shared_scores(evaluators: list[str]) -> list[Score]:
    """Directional primary scores that two or more of ``evaluators`` declare under one name
    (``insertion_minus_deletion`` of every attribution explainer): the columns explainers
    compete on."""
    seen: dict[str, list[Score]] = defaultdict(list)
    for ev in evaluators:
        for s in evaluator_registry(ev).get(ev).scores:
            if s.primary and s.direction != "none":
                seen[s.name].append(s)
    return [v[0] for v in seen.values() if len(v) >= 2]


def winners_table(view: MatrixView, dataset: str) -> Table | None:
    """Per architecture and shared score, the explainer that does best, with its value and
    its control: which explainer wins faithfulness on which GAN."""
    evaluators = view.evaluators_of("explainability")
    scores = shared_scores(evaluators)
    if not scores:
        return None
    out = Table(
        [Column("architecture", numeric=False)]
        + [Column(f"{s.name} {s.arrow}", None, s, numeric=False) for s in scores],
        [],
    )
    for row in view.rows(dataset):
        if row.reference == "real":
            continue
        cells, any_value = [Cell(row.label, title=row.title)], False
        for score in scores:
            have = []
            for ev in evaluators:
                cls = evaluator_registry(ev).get(ev)
                if any(s.name == score.name for s in cls.scores):
                    cell = _score_cell(view, dataset, row, ev, cls.score(score.name))
                    if cell.sort is not None:
                        have.append((cell.sort, ev, cell.text))
            if not have:
                cells.append(Cell("–"))
                continue
            any_value = True
            pick = max if score.direction == "higher" else min
            value, ev, text = pick(have, key=lambda h: h[0])
            others = "; ".join(f"{e}: {v:.3g}" for v, e, _ in sorted(have, key=lambda h: h[1]))
            cells.append(Cell(f"{ev} {text}", value, others))
        if any_value:
            out.rows.append(TableRow(row.label, row.is_control, cells))
    return out if out.rows else None


def explainer_cost_table(view: MatrixView, dataset: str) -> Table | None:
    """Seconds per explained image of every explainer that reports ``s_per_image``, per architecture."""
    evaluators = [
        ev
        for ev in view.evaluators_of("explainability")
        if any(s.name == "s_per_image" for s in evaluator_registry(ev).get(ev).scores)
    ]
    if not evaluators:
        return None
    out = Table(
        [Column("architecture", numeric=False), Column("device", numeric=False)]
        + [Column(f"{ev} ({cost_unit('s', 'image')}) ↓", ev) for ev in evaluators],
        [],
    )
    for row in view.rows(dataset):
        if row.reference != "trained":
            continue
        cells, devices, any_value = [Cell(row.label, title=row.title), Cell("")], set(), False
        for ev in evaluators:
            cell = _score_cell(
                view, dataset, row, ev, evaluator_registry(ev).get(ev).score("s_per_image")
            )
            if cell.sort is not None:
                any_value = True
                score = evaluator_registry(ev).get(ev).score("s_per_image")
                text, mean = cost_text(seed_values(view, dataset, row, ev, score)[0], "s")
                cell = Cell(text, mean, cell.title)
                devices |= {
                    (rec.get("env") or {}).get("device", "?")
                    for _, rec in view.cells(dataset, row, "evaluate", ev)
                    if rec and rec["status"] == "finished"
                }
            cells.append(cell)
        cells[1] = Cell("; ".join(sorted(devices)))
        if any_value:
            out.rows.append(TableRow(row.label, False, cells))
    return out if out.rows else None


# costs per step or per image, printed in ms; whole-run costs stay in seconds
PER_ITEM_COSTS = ("s_per_step_median", "s_per_image")


def _cost_header_unit(s: Score) -> str:
    if s.name in PER_ITEM_COSTS:
        return cost_unit(s.unit, s.name.split("_per_")[1].split("_")[0])
    return s.unit


# a CPU train trial whose loop got less than this share of its threads' time (``cpu_share``)
# ran beside other jobs; its row of the cost table says so
CONTENDED_SHARE = 0.75


def cost_table(view: MatrixView, dataset: str) -> tuple[Table | None, dict[str, float]]:
    """Train cost per architecture, and each one's median seconds per step by name."""
    out = Table(
        [
            Column("architecture", numeric=False),
            Column("device", numeric=False),
            Column("steps × batch"),
        ]
        + [
            Column(f"{s.name} ({_cost_header_unit(s)}) {s.arrow}", "train", s)
            for s in COST_SCORES
            if s.primary
        ]
        + [Column("params G / D"), Column("evaluations (s)")],
        [],
    )
    per_step: dict[str, float] = {}
    for row in view.rows(dataset):
        if row.reference != "trained":
            continue
        trains = [
            rec
            for _, rec in view.cells(dataset, row, "train")
            if rec and rec["status"] == "finished"
        ]
        if not trains:
            continue
        timings = [rec["timings"] for rec in trains]
        budget = trains[0]["config"]["budget"]
        devices = sorted({(rec.get("env") or {}).get("device", "?") for rec in trains})
        shares = [t["cpu_share"] for t in timings if "cpu_share" in t]
        contended = [x for x in shares if x < CONTENDED_SHARE]
        device_cell = Cell("; ".join(devices))
        if contended:  # another job shared the CPU: these timings are slower than idle ones
            device_cell = Cell(
                device_cell.text + " (contended)",
                title=f"{len(contended)} of {len(timings)} seeds trained while other jobs "
                f"shared the CPU: the loop had {min(contended):.0%} of its threads' time "
                f"(below {CONTENDED_SHARE:.0%}), so its timings are slower than an idle machine's",
            )
        cells = [
            Cell(row.label, title=row.title),
            device_cell,
            Cell(
                f"{budget['steps']} × {budget['batch_size']}",
                budget["steps"] * budget["batch_size"],
            ),
        ]
        for s in COST_SCORES:
            if s.primary:
                vals = [t[s.name] for t in timings if s.name in t]
                text, mean = cost_text(vals, s.unit, convert=s.name in PER_ITEM_COSTS)
                cells.append(
                    Cell(text, mean, f"mean ± std over {len(vals)} seeds" if len(vals) > 1 else "")
                )
                if s.name == "s_per_step_median" and mean is not None:
                    per_step[row.label] = mean
        g, d = timings[0].get("params_generator", 0), timings[0].get("params_discriminator", 0)
        cells.append(Cell(f"{g / 1e6:.2f}M / {d / 1e6:.2f}M", g + d))
        evals = [
            rec["timings"]["evaluate_s"]
            for _, rec in view.cells(dataset, row, "evaluate")
            if rec and rec["status"] == "finished"
        ]
        eval_s = float(np.sum(evals)) / max(1, len(trains)) if evals else None
        cells.append(
            Cell(
                cost_text([eval_s], "s", convert=False)[0] if evals else "–",
                eval_s,
                "seconds of all evaluations of one seed",
            )
        )
        out.rows.append(TableRow(row.label, False, cells))
    return (out if out.rows else None), per_step


def architecture_ranking(
    view: MatrixView, dataset: str, kinds: tuple[str, ...], gates: dict[str, Gate]
) -> dict[str, Ranked]:
    """The trained architectures ranked over the columns of ``kinds`` that passed their
    gates, each on its margin over its own untrained control (for quality: the share of the
    untrained-to-real gap it closes), with bootstrap rank intervals."""
    trained, untrained, real = _rows_by_reference(view, dataset)
    columns = []
    for ev, score in score_columns(view.cfg):
        col = f"{ev}/{score.name}"
        if column_kind(ev) not in kinds or not (gates.get(col) and gates[col].ranked):
            continue
        real_values = seed_values(view, dataset, real, ev, score)[0]
        entries = {}
        for row in trained:
            values = seed_values(view, dataset, row, ev, score)[0]
            base = seed_values(view, dataset, untrained.get(row.architecture), ev, score)[0]
            if values and base:
                entries[row.label] = Entry(values, base, real_values)
        if len(entries) >= 2:
            columns.append(RankColumn(col, score, entries))
    return rank(columns)


# sanity checks of an attribution method, shown beside its rank and never in it: a random
# map "passes" cascading randomisation by being noise, so beating that control is not
# faithfulness (the issue-32 summary quoted "lime beats its random control on 1 of 7 Ds")
SANITY_SCORES = ("randomisation_rho",)


def attribution_evaluators(view: MatrixView) -> list[str]:
    return [ev for ev in view.cfg.explainers if column_kind(ev) == "discriminator"]


def explainer_ranking(view: MatrixView, dataset: str) -> tuple[dict[str, Ranked], int, int]:
    """The attribution methods ranked against each other: one column per trained D and
    shared faithfulness score, each method on its margin over its own random control; a
    column counts only where at least one method beats its control there beyond the seeds'
    spread. Returns the ranking, the columns used and the columns offered."""
    evaluators = attribution_evaluators(view)
    trained, _, _ = _rows_by_reference(view, dataset)
    columns, offered = [], 0
    for score in shared_scores(evaluators):
        if score.cost or not score.control or score.name in SANITY_SCORES:
            continue
        for row in trained:
            entries = {}
            for ev in evaluators:
                cls = evaluator_registry(ev).get(ev)
                if any(s.name == score.name for s in cls.scores):
                    values, controls = seed_values(view, dataset, row, ev, cls.score(score.name))
                    if values and controls:
                        entries[ev] = Entry(values, controls)
            if len(entries) < 2:
                continue
            offered += 1
            if any(separation(e.values, e.baseline, score.direction).ok for e in entries.values()):
                columns.append(RankColumn(f"{row.label}/{score.name}", score, entries))
    return rank(columns), len(columns), offered


# the quality score a summary quotes to say how far the best model is from real data, and the
# two-sample test it quotes to say whether its samples can still be told from real ones: the
# first of each list that ranks on the dataset
HEADLINE_DISTANCES = ("fid", "mmd_domain2", "kid", "mmd2", "c2st_jsd")
HEADLINE_TESTS = ("knn_c2st_accuracy", "one_nn_accuracy", "c2st_accuracy")


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _leaders(ranking: dict[str, Ranked]) -> list[str]:
    """The contenders whose rank interval reaches first place, best first."""
    return sorted(
        (a for a, r in ranking.items() if r.rank_low == 1),
        key=lambda a: (ranking[a].rank, -ranking[a].rate, a),
    )


def _quality_lines(
    view: MatrixView, dataset: str, gates: dict[str, Gate], q_rank: dict[str, Ranked]
) -> list[str]:
    if not q_rank:
        return [
            "**Best sample quality: not ranked.** No quality score puts real data beyond every "
            "untrained control here, so no architecture is ranked."
        ]
    leaders = _leaders(q_rank)
    best = leaders[0]
    r = q_rank[best]
    if len(leaders) == 1:
        lines = [
            f"**Best sample quality: {best}** (rank 1 of {len(q_rank)}; mean win rate "
            f"{r.rate:.2f} [{r.rate_low:.2f}, {r.rate_high:.2f}] over {r.columns} ranked scores)."
        ]
    else:
        intervals = ", ".join(f"{a} {q_rank[a].rank_words()}" for a in leaders)
        lines = [
            f"**Best sample quality: a tie between {_names(leaders)}** (their rank "
            f"intervals overlap: {intervals}; {len(q_rank)} ranked)."
        ]
    # how far from real data: the best on one distance and one two-sample test
    trained, untrained, real = _rows_by_reference(view, dataset)
    row = next(t for t in trained if t.label == best)
    quoted = {}
    for ev, score in score_columns(view.cfg, view.evaluators_of("quality")):
        gate = gates.get(f"{ev}/{score.name}")
        if gate is not None and gate.ranked:
            quoted[score.name] = (ev, score)
    far = []
    for name in HEADLINE_DISTANCES:
        if name in quoted:
            ev, score = quoted[name]
            v = seed_values(view, dataset, row, ev, score)[0]
            rv = seed_values(view, dataset, real, ev, score)[0]
            uv = seed_values(view, dataset, untrained.get(row.architecture), ev, score)[0]
            if v and rv and uv:
                share = margin(
                    float(np.mean(v)), float(np.mean(uv)), float(np.mean(rv)), score.direction
                )
                far.append(
                    f"{best}'s `{name}` is {values_text(v, score)[0]} against "
                    f"{values_text(rv, score)[0]} for real data and {values_text(uv, score)[0]} "
                    f"untrained ({share:.1%} of the way from its untrained network to real data)"
                )
                break
    for name in HEADLINE_TESTS:
        if name in quoted:
            ev, score = quoted[name]
            v = seed_values(view, dataset, row, ev, score)[0]
            rv = seed_values(view, dataset, real, ev, score)[0]
            if v and rv:
                ideal = f" (chance {score.ideal:g})" if score.ideal is not None else ""
                far.append(
                    f"`{name}` tells its samples from real ones at {values_text(v, score)[0]}, "
                    f"where real data scores {values_text(rv, score)[0]}{ideal}"
                )
                break
    if far:
        lines.append("**How far from real:** " + "; ".join(far) + ".")
    return lines


def _against_control(
    view: MatrixView, dataset: str, rows: list[Row], ev: str, score: Score
) -> tuple[int, int, list[float]]:
    """Over ``rows`` (trained Ds): on how many ``ev`` beats its random control on ``score``
    beyond the seeds' spread, on how many both were scored, and its margin on each."""
    beaten, compared, gains = 0, 0, []
    for row in rows:
        v, c = seed_values(view, dataset, row, ev, score)
        if v and c:
            compared += 1
            beaten += separation(v, c, score.direction).ok
            gains.append(margin(float(np.mean(v)), float(np.mean(c)), None, score.direction))
    return beaten, compared, gains


def _explainer_lines(
    view: MatrixView, dataset: str, ranked: tuple[dict[str, Ranked], int, int]
) -> list[str]:
    ranking, used, _ = ranked
    evaluators = attribution_evaluators(view)
    if not evaluators:
        return []
    if not ranking:
        return [
            "**Most faithful attribution method: none ranks.** On no discriminator does a "
            "method beat its random control beyond the seeds' spread."
        ]
    leaders = _leaders(ranking)
    r = ranking[leaders[0]]
    head = (
        f"**Most faithful attribution method: {leaders[0]}** (win rate {r.rate:.2f} "
        f"[{r.rate_low:.2f}, {r.rate_high:.2f}] over {used} D × score columns)"
        if len(leaders) == 1
        else f"**Most faithful attribution method: a tie between {_names(leaders)}** "
        f"(rank intervals overlap over {used} D × score columns)"
    )
    trained, _, _ = _rows_by_reference(view, dataset)
    per_criterion = []
    for score in shared_scores(evaluators):
        if score.cost or not score.control or score.name in SANITY_SCORES:
            continue
        best = None
        for ev in evaluators:
            cls = evaluator_registry(ev).get(ev)
            if not any(s.name == score.name for s in cls.scores):
                continue
            beaten, compared, gains = _against_control(
                view, dataset, trained, ev, cls.score(score.name)
            )
            if compared:
                key = (beaten, float(np.median(gains)))
                if best is None or key > best[0]:
                    best = (key, ev, beaten, compared)
        if best is not None and best[2] == 0:
            per_criterion.append(f"`{score.name}`: none beats random ({best[3]} Ds)")
        elif best is not None:
            (beaten, gain), ev, _, compared = best
            per_criterion.append(
                f"`{score.name}`: {ev}, above random on {beaten} of {compared} Ds (median "
                f"margin {gain:+.2g})"
            )
    if per_criterion:
        head += ". Best per criterion: " + "; ".join(per_criterion)
    return [head + "."]


def _cheapest_and_dearest(costs: dict[str, float], what: str, per: str) -> str:
    unit = cost_unit("s", per)
    cheap, dear = min(costs, key=costs.get), max(costs, key=costs.get)
    return (
        f"{what} is cheapest {'for' if per == 'step' else 'with'} {cheap} "
        f"({cost_text([costs[cheap]], 's')[0]} {unit}) and dearest "
        f"{'for' if per == 'step' else 'with'} {dear} ({cost_text([costs[dear]], 's')[0]} {unit})"
    )


def _cost_lines(view: MatrixView, dataset: str, per_step: dict[str, float]) -> list[str]:
    parts = [_cheapest_and_dearest(per_step, "training", "step")] if per_step else []
    costs = {}
    trained, _, _ = _rows_by_reference(view, dataset)
    for ev in attribution_evaluators(view):
        cls = evaluator_registry(ev).get(ev)
        if any(s.name == "s_per_image" for s in cls.scores):
            vals = [
                v
                for row in trained
                for v in seed_values(view, dataset, row, ev, cls.score("s_per_image"))[0]
            ]
            if vals:
                costs[ev] = float(np.median(vals))
    if len(costs) >= 2:
        parts.append(_cheapest_and_dearest(costs, "explaining", "image"))
    if not parts:
        return []
    text = "; ".join(parts)
    return [f"**Cost:** {text[0].upper()}{text[1:]}."]


def summary_lines(
    view: MatrixView,
    dataset: str,
    gates: dict[str, Gate],
    q_rank: dict[str, Ranked],
    per_step: dict[str, float],
    ranked: tuple[dict[str, Ranked], int, int] | None = None,
) -> list[str]:
    """Three or four sentences, from the data, that answer what the board is for: the best
    architecture (or the tie), how far it is from real data, the most faithful attribution
    method (``ranked``: :func:`explainer_ranking`'s result where the caller has it), and what
    each costs."""
    return (
        _quality_lines(view, dataset, gates, q_rank)
        + _explainer_lines(view, dataset, ranked or explainer_ranking(view, dataset))
        + _cost_lines(view, dataset, per_step)
    )


def ranking_table(
    quality: dict[str, Ranked],
    learned: dict[str, Ranked],
    per_step: dict[str, float],
) -> Table | None:
    """The architectures by quality rank (ties where the bootstrap rank intervals overlap),
    beside their rank on what their generators learned, and their cost (never ranked)."""
    if not quality:
        return None
    cols = [
        Column("quality rank ↓"),
        Column("architecture", numeric=False),
        Column("quality win rate ↑"),
    ]
    if learned:
        cols += [Column("explainability rank ↓"), Column("explainability win rate ↑")]
    cols.append(Column(f"training cost ({cost_unit('s', 'step')}), not ranked"))
    out = Table(cols, [])
    order = sorted(quality, key=lambda a: (quality[a].rank, -quality[a].rate, a))
    for arch in order:
        q = quality[arch]
        cells = [
            _rank_cell(q, quality),
            Cell(arch),
            Cell(f"{q.rate:.2f} [{q.rate_low:.2f}, {q.rate_high:.2f}]", q.rate),
        ]
        if learned:
            e = learned.get(arch)
            cells += (
                [
                    _rank_cell(e, learned),
                    Cell(f"{e.rate:.2f} [{e.rate_low:.2f}, {e.rate_high:.2f}]", e.rate),
                ]
                if e
                else [Cell("–"), Cell("–")]
            )
        step = per_step.get(arch)
        cells.append(Cell(cost_text([step] if step is not None else [], "s")[0], step))
        out.rows.append(TableRow(arch, False, cells))
    return out


def explainer_ranking_table(
    view: MatrixView, dataset: str, ranked: tuple[dict[str, Ranked], int, int] | None = None
) -> tuple[Table | None, str]:
    """Which attribution method is most faithful on this dataset's trained Ds, beside its
    sanity (cascading randomisation) and cost, neither of which enters the rank; ``ranked``:
    :func:`explainer_ranking`'s result where the caller has it."""
    ranking, used, offered = ranked or explainer_ranking(view, dataset)
    if not ranking:
        return None, ""
    trained, _, _ = _rows_by_reference(view, dataset)
    out = Table(
        [
            Column("rank ↓"),
            Column("explainer", numeric=False),
            Column("faithfulness win rate ↑"),
            Column("beats random control"),
            Column("randomisation_rho ↓, not ranked"),
            Column(f"cost ({cost_unit('s', 'image')}), not ranked"),
        ],
        [],
    )
    for ev in sorted(ranking, key=lambda e: (ranking[e].rank, -ranking[e].rate, e)):
        r = ranking[ev]
        cls = evaluator_registry(ev).get(ev)
        beaten, compared, rho, cost = 0, 0, [], []
        for s in cls.scores:
            if (
                s.primary
                and s.control
                and not s.cost
                and s.direction != "none"
                and s.name not in SANITY_SCORES
            ):
                b, n, _ = _against_control(view, dataset, trained, ev, s)
                beaten, compared = beaten + b, compared + n
        for row in trained:
            for name, bucket in (("randomisation_rho", rho), ("s_per_image", cost)):
                if any(s.name == name for s in cls.scores):
                    bucket += seed_values(view, dataset, row, ev, cls.score(name))[0]
        rho_m = float(np.median(rho)) if rho else None
        cost_m = float(np.median(cost)) if cost else None
        out.rows.append(
            TableRow(
                ev,
                False,
                [
                    _rank_cell(r, ranking),
                    Cell(ev),
                    Cell(f"{r.rate:.2f} [{r.rate_low:.2f}, {r.rate_high:.2f}]", r.rate),
                    Cell(
                        f"{beaten} of {compared}",
                        beaten / compared if compared else None,
                        "score × D pairs where the method beats its random control beyond the seeds' spread",
                    ),
                    Cell(
                        "–" if rho_m is None else f"{rho_m:.3f}",
                        rho_m,
                        "median over the trained Ds",
                    ),
                    Cell(
                        cost_text([cost_m] if cost_m is not None else [], "s")[0],
                        cost_m,
                        "median over the trained Ds",
                    ),
                ],
            )
        )
    note = (
        f"{used} of {offered} D × score columns rank: in the others no method beats its random "
        "control beyond the seeds' spread."
    )
    return out, note


def _checkpoint_series(
    view: MatrixView, dataset: str, ev: str, score: Score
) -> dict[str, list[tuple[int, float]]]:
    """Per architecture, (training steps, value) of its first seed: the untrained control (0
    steps), the partial trainings (``checkpoints``) and the trained model."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for t in view.own:
        lab = t.labels
        if t.kind != "evaluate" or lab["dataset"] != dataset or lab.get("evaluator") != ev:
            continue
        if lab["reference"] == "real" or lab["seed"] != view.cfg.seeds_for(lab["architecture"])[0]:
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished" or score.name not in (rec["scores"] or {}):
            continue
        steps = {
            "untrained": 0,
            "trained": view.cfg.train_for(lab["architecture"], dataset)["steps"],
            CHECKPOINT: lab.get("steps"),
        }[lab["reference"]]
        series[lab["architecture"]].append((steps, rec["scores"][score.name]))
    return series


def validity_table(view: MatrixView, dataset: str, gates: dict[str, Gate]) -> Table | None:
    """Per directional score: whether it separates what it must (real data from untrained
    controls, an explainer from its random control), whether it improves along one
    training's checkpoints, how it agrees with the other scores' orderings, and whether it
    ranks."""
    trained, _, _ = _rows_by_reference(view, dataset)
    cols = [
        (ev, s) for ev, s in score_columns(view.cfg) if f"{ev}/{s.name}" in gates and not s.cost
    ]
    if not cols:
        return None
    orderings: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    directions = {}
    for ev, s in cols:
        col = f"{ev}/{s.name}"
        directions[col] = s.direction
        means = {}
        for row in trained:
            v = seed_values(view, dataset, row, ev, s)[0]
            if v:
                means[row.label] = float(np.mean(v))
        orderings[column_kind(ev)][col] = means
    agreement = {}
    for group in orderings.values():
        agreement |= rank_agreement(group, directions)
    out = Table(
        [
            Column("score", numeric=False),
            Column("kind", numeric=False),
            Column("separation", numeric=False),
            Column("along checkpoints (Kendall τ)"),
            Column("agreement with the other scores (mean τ)"),
            Column("ranked", numeric=False),
        ],
        [],
    )
    kind_words = {
        "quality": "quality",
        "generator": "what G learned",
        "discriminator": "explains D",
    }
    for ev, s in cols:
        col = f"{ev}/{s.name}"
        gate = gates[col]
        kind = column_kind(ev)
        if gate.separation is not None:
            sep = Cell(
                f"real vs untrained {gate.separation.words()}",
                gate.separation.spreads if math.isfinite(gate.separation.spreads) else 1e9,
                gate.reason,
            )
        else:
            sep = Cell(gate.reason.split(";")[0] if gate.of else "–", gate.passed, gate.reason)
        mono = (
            monotonicity(_checkpoint_series(view, dataset, ev, s), s.direction)
            if kind == "quality"
            else None
        )
        mono_cell = (
            Cell(
                f"{mono[0]:+.2f} ({mono[1]} of {mono[2]} monotone)",
                mono[0],
                "Kendall τ between training steps and the score, signed so that +1 means it "
                "improves at every checkpoint; mean over the architectures",
            )
            if mono
            else Cell("–")
        )
        agree = agreement.get(col, {})
        agree_cell = (
            Cell(
                f"{np.mean(list(agree.values())):+.2f}",
                float(np.mean(list(agree.values()))),
                "; ".join(f"{k}: {v:+.2f}" for k, v in sorted(agree.items())),
            )
            if agree
            else Cell("–")
        )
        out.rows.append(
            TableRow(
                col,
                False,
                [
                    Cell(f"{s.name} ({ev})"),
                    Cell(kind_words[kind]),
                    sep,
                    mono_cell,
                    agree_cell,
                    Cell("yes" if gate.ranked else f"no: {gate.reason}", int(gate.ranked)),
                ],
            )
        )
    return out


# the widest line a README.md table may have: wider tables are split into several, each
# repeating the first column, so that a forge page shows them without scrolling
README_WIDTH = 160


def markdown_table(table: Table, notes: list[str], width: int = README_WIDTH) -> str:
    """A table as GitHub markdown: controls in italics, best in bold, failures as footnotes;
    split by columns into tables no wider than ``width`` characters."""
    lines = []
    for row in table.rows:
        texts = []
        for col, cell in zip(table.columns, row.cells, strict=True):
            text = cell.text
            if col.header == "architecture" and row.control:
                text = f"*{text}*"
            if cell.status == "failed":
                note = f"{row.label} × {col.evaluator}: {cell.title}"
                if note not in notes:
                    notes.append(note)
                text = f"failed[^{notes.index(note) + 1}]"
            if cell.bold:
                text = f"**{text}**"
            texts.append(text.replace("|", "\\|"))
        lines.append(texts)
    headers = [c.header for c in table.columns]

    def render(chunk: list[int]) -> str:
        return tabulate(
            [[r[c] for c in chunk] for r in lines],
            headers=[headers[c] for c in chunk],
            tablefmt="github",
            disable_numparse=True,
        )

    def wide(text: str) -> bool:
        return max(len(line) for line in text.splitlines()) > width

    chunks, current = [], [0]
    for c in range(1, len(headers)):
        if len(current) > 1 and wide(render(current + [c])):
            chunks.append(current)
            current = [0]
        current.append(c)
    chunks.append(current)
    return "\n\n".join(render(chunk) for chunk in chunks)


def legend_rows(view: MatrixView) -> list[tuple[str, str, str, str, str]]:
    """(score, evaluator, better, unit, meaning) for every declared score, cost included."""
    out = []
    for ev in view.cfg.evaluators:
        for s in evaluator_registry(ev).get(ev).scores:
            out.append((s.name, ev, _better(s), s.unit or "–", s.meaning))
    for s in COST_SCORES:
        out.append((s.name, "cost", _better(s), s.unit or "–", s.meaning))
    return out


def _better(s: Score) -> str:
    better = {"higher": "↑ higher", "lower": "↓ lower", "none": "–"}[s.direction]
    if s.ideal is not None:
        better += f" (ideal {s.ideal:g})"
    return better


def legend(view: MatrixView) -> str:
    """Every declared score, one line each (a table of long meanings would not fit a page)."""
    lines = []
    for name, ev, better, unit, meaning in legend_rows(view):
        unit_words = f", {unit}" if unit != "–" else ""
        lines.append(f"- `{name}` ({ev}): better {better}{unit_words}. {meaning}")
    return "\n".join(lines)


def tidy_rows(view: MatrixView) -> list[dict[str, Any]]:
    """results.csv rows: one per architecture × dataset × seed × score (cost figures included)."""
    out = []
    declared: dict[str, dict[str, Score]] = {}
    for ev in view.cfg.evaluators:
        declared[ev] = {s.name: s for s in evaluator_registry(ev).get(ev).scores}
    cost = {s.name: s for s in COST_SCORES}
    for t in view.trials:
        rec = view.records.get(t.key)
        if rec is None:
            continue
        lab = t.labels
        env = rec.get("env") or {}
        if t.kind == "domain":
            out.extend(_domain_rows(view, t, rec))
            continue
        base = {
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
        if t.kind == "evaluate":
            scores = declared[lab["evaluator"]]
            values = rec.get("scores") or {}
            for name, s in scores.items():
                out.append(
                    base
                    | {
                        "evaluator": lab["evaluator"],
                        "score": name,
                        "value": values.get(name, np.nan),
                        "direction": s.direction,
                        "unit": s.unit,
                        "error": rec.get("error"),
                    }
                )
        elif rec["status"] == "finished":
            for name, s in cost.items():
                if name in (rec.get("timings") or {}):
                    out.append(
                        base
                        | {
                            "evaluator": "train",
                            "score": name,
                            "value": rec["timings"][name],
                            "direction": s.direction,
                            "unit": s.unit,
                            "error": None,
                        }
                    )
    out.extend(_pinned_domain_rows(view))
    return out


def _pinned_domain_rows(view: MatrixView) -> list[dict[str, Any]]:
    """results.csv rows of the shipped domain networks the view's evaluations read: their
    held-out scores, keyed by the weights' sha256."""
    rows = []
    for dataset in view.cfg.datasets:
        plan = domain_plan(view.cfg, dataset)
        if plan.directory is None:
            continue
        meta = json.loads((Path(plan.directory) / "domain.json").read_text())
        for name, value in meta["metrics"].items():
            rows.append(
                {
                    "matrix": view.cfg.name,
                    "device_type": view.device_type,
                    "device": "CPU",
                    "dataset": dataset,
                    "architecture": "domain network",
                    "reference": "",
                    "seed": 0,
                    "status": "finished",
                    "trial_key": f"weights sha256 {meta['sha256']}",
                    "git_commit": None,
                    "torch": meta["trained"]["torch"],
                    "origin": "pinned",
                    "evaluator": "domain",
                    "score": name,
                    "value": value,
                    "direction": "higher",
                    "unit": "",
                    "error": None,
                }
            )
    return rows


ORIGIN_WORDS = {REPRODUCED: "reproduced", DIFFERS: "differs", NOT_REPRODUCED: "not reproduced"}


def _origin(view: MatrixView, architecture: str) -> str:
    if architecture not in view.submitted:
        return "maintainers"
    return "submitted, " + ORIGIN_WORDS[view.mark(architecture)[0]]


def _domain_rows(view: MatrixView, t: Trial, rec: dict) -> list[dict[str, Any]]:
    """results.csv rows of a domain network: its held-out accuracies and R²."""
    env = rec.get("env") or {}
    rows = []
    for name, value in (rec.get("scores") or {}).items():
        rows.append(
            {
                "matrix": view.cfg.name,
                "device_type": view.device_type,
                "device": env.get("device"),
                "dataset": t.labels["dataset"],
                "architecture": "domain network",
                "reference": "",
                "seed": t.labels.get("seed", 0),
                "status": rec["status"],
                "trial_key": t.key,
                "git_commit": env.get("git_commit"),
                "torch": env.get("torch"),
                "origin": "maintainers",
                "evaluator": "domain",
                "score": name,
                "value": value,
                "direction": "higher",
                "unit": "",
                "error": rec.get("error"),
            }
        )
    return rows


def _held_out(scores: dict[str, float]) -> str:
    return ", ".join(
        f"{k.replace('accuracy_', 'accuracy ').replace('r2_', 'R² ')} {v:.3f}"
        for k, v in scores.items()
    )


def domain_line(view: MatrixView, dataset: str) -> str | None:
    """One sentence on the dataset's domain network, the feature space of fidelity scores."""
    plan = domain_plan(view.cfg, dataset)
    if plan.directory is not None:
        meta = json.loads((Path(plan.directory) / "domain.json").read_text())
        return (
            f"Domain network (a small CNN trained once on the real training split by `ganbench "
            f"train-domain {dataset}` and shipped with ganbench, weights sha256 "
            f"`{meta['sha256'][:12]}`; every machine scores in its features): held-out "
            f"{_held_out(meta['metrics'])}."
        )
    for t in view.trials:
        if t.kind != "domain" or t.labels["dataset"] != dataset:
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            why = (rec or {}).get("error") or "not run"
            return f"Domain network: **failed** ({why})."
        seconds = (rec.get("timings") or {}).get("train_s", float("nan"))
        sha = ((rec.get("outputs") or {}).get("weights_sha256") or "")[:12]
        return (
            f"Domain network (a small CNN trained by the suite on the real training split, on CPU "
            f"in {seconds:.0f} s, weights sha256 `{sha}`; its features are the feature space of "
            f"the fidelity scores): held-out {_held_out(rec['scores'])}."
        )
    return None


def _within(root: Path, path: Path) -> bool:
    """Whether ``path`` stays inside ``root`` (names are checked where they enter, bundles
    included; this keeps any file the renderer writes under ``leaderboard/`` regardless)."""
    return path.resolve().is_relative_to(root.resolve())


def _first_seed(view: MatrixView, lab: dict) -> bool:
    return lab["seed"] == (view.cfg.seeds_for(lab["architecture"]) or view.cfg.seeds)[0]


def _copy_figures(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], str]:
    """Copy the first seed's sample grids into figures/ (``ganbench.board.figures.store_png``), and
    draw a grid of real images per dataset; returns (dataset, arch, reference, seed) ->
    relative path, the real grid under (dataset, "real data", "real", 0)."""
    figures = {}
    for t in view.trials:
        lab = t.labels
        if t.kind != "train" or lab["reference"] == CHECKPOINT or not _first_seed(view, lab):
            continue
        rel = (
            Path("figures")
            / view.slug
            / lab["dataset"]
            / f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}.png"
        )
        src = store_artifacts / t.key / SAMPLE_GRID
        dst = out / rel
        if not _within(out, dst):
            continue
        if src.is_file():
            store_png(src, dst, grid=True)
        if dst.is_file():
            figures[(lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])] = (
                rel.as_posix()
            )
    for dataset in view.cfg.datasets:
        rel = Path("figures") / view.slug / dataset / "real-data.png"
        if not any(k[0] == dataset for k in figures):
            continue
        if (out / rel).is_file() or real_grid(
            dataset,
            view.cfg.dataset_params.get(dataset, {}),
            out / rel,
            view.cfg.train["grid_size"],
        ):
            figures[(dataset, "real data", "real", 0)] = rel.as_posix()
    return figures


def _copied_artifacts(view: MatrixView, store_artifacts: Path, out: Path, pattern: str, keep):
    """Copy the files matching ``pattern`` that finished evaluations (``keep(labels)``) wrote
    into figures/, prefixed by their row (PNGs made small by ``store_png``); yields (labels,
    copied path), copies from an earlier render included (they stay usable when only the
    bundle is left)."""
    for t in view.trials:
        lab = t.labels
        if t.kind != "evaluate" or not keep(lab):
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            continue
        folder = out / "figures" / view.slug / lab["dataset"]
        prefix = f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}-{lab['evaluator']}-"
        if not _within(out, folder / prefix):
            continue
        src_dir = store_artifacts / t.key
        for src in sorted(src_dir.glob(pattern)) if src_dir.is_dir() else []:
            dst = folder / (prefix + src.name)
            if src.suffix == ".png":
                store_png(src, dst, grid=False)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        for dst in sorted(folder.glob(prefix + pattern)) if folder.is_dir() else []:
            yield lab, dst


def _copy_explainer_figures(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], list[tuple[str, str]]]:
    """Copy the PNGs explainers wrote for each row's first seed (the one the gallery shows)
    into figures/; (dataset, arch, reference, seed) -> [(evaluator, path)]."""
    figures: dict[tuple[str, str, str, int], list[tuple[str, str]]] = defaultdict(list)
    explainers = set(view.cfg.explainers)
    for lab, dst in _copied_artifacts(
        view,
        store_artifacts,
        out,
        "*.png",
        lambda lab: (
            lab.get("evaluator") in explainers
            and lab["reference"] != CHECKPOINT
            and _first_seed(view, lab)
        ),
    ):
        key = (lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])
        figures[key].append((lab["evaluator"], dst.relative_to(out).as_posix()))
    return figures


def _copy_per_class_tables(view: MatrixView, store_artifacts: Path, out: Path) -> dict:
    """Copy the per-class tables explainers wrote (``*_per_class.json``, e.g. InfoGAN's code
    values matched to classes) beside the figures; (dataset, arch, seed) -> [(evaluator, path)]
    for the trained rows."""
    found: dict[tuple[str, str, int], list[tuple[str, Path]]] = defaultdict(list)
    for lab, dst in _copied_artifacts(
        view, store_artifacts, out, "*_per_class.json", lambda lab: lab["reference"] == "trained"
    ):
        found[(lab["dataset"], lab["architecture"], lab["seed"])].append((lab["evaluator"], dst))
    return found


def per_class_tables(tables: dict, dataset: str) -> list[tuple[str, Table]]:
    """One table per classifier head that codes were matched against: a row per trained
    architecture and seed, a column per class, each cell the share of the images generated
    from the class's code values that the domain network puts in that class (hover: the
    code values and the class's recall)."""
    by_head: dict[str, list[tuple[str, int, dict]]] = defaultdict(list)
    for (ds, arch, seed), files in sorted(tables.items()):
        if ds != dataset:
            continue
        for _, path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if "classes" in data and "head" in data:
                by_head[data["head"]].append((arch, seed, data))
    out = []
    for head, entries in sorted(by_head.items()):
        names = entries[0][2].get("class_names") or [
            str(c["class"]) for c in entries[0][2]["classes"]
        ]
        table = Table(
            [Column("architecture", numeric=False), Column("seed"), Column("code accuracy ↑")]
            + [Column(str(n)) for n in names],
            [],
        )
        for arch, seed, data in entries:
            cells = [
                Cell(arch),
                Cell(str(seed), seed),
                Cell(f"{data['code_accuracy']:.3f}", data["code_accuracy"]),
            ]
            by_class = {c["class"]: c for c in data["classes"]}
            for i in range(len(names)):
                c = by_class.get(i)
                if c is None or not c.get("codes"):
                    cells.append(Cell("–", None, "no code value matched to this class"))
                    continue
                cells.append(
                    Cell(
                        f"{c['accuracy']:.2f}",
                        c["accuracy"],
                        f"code values {', '.join(map(str, c['codes']))}: {c['correct']} of {c['n']} "
                        f"images in this class; recall {c.get('recall', float('nan')):.2f}",
                    )
                )
            table.rows.append(TableRow(f"{arch} seed {seed}", False, cells))
        out.append((head, table))
    return out


def _steps_words(train: dict) -> str:
    return f"{train['steps']} steps × batch {train['batch_size']}"


def _budget_words(cfg: MatrixConfig, arch: str) -> str:
    """An architecture's own budget: its steps (per dataset where they differ) and seeds."""
    per = {d: _steps_words(cfg.train_for(arch, d)) for d in cfg.datasets}
    own = cfg.train_overrides.get(arch, {})
    words = []
    if any(k in own for k in ("steps", "batch_size")) or any(d in own for d in cfg.datasets):
        if len(set(per.values())) == 1:
            words.append(next(iter(per.values())))
        else:
            words += [f"{words_} on {d}" for d, words_ in per.items()]
    if cfg.seeds_for(arch) != cfg.seeds:
        many = len(cfg.seeds_for(arch)) > 1
        words.append(f"seed{'s' if many else ''} {', '.join(map(str, cfg.seeds_for(arch)))}")
    return ", ".join(words)


def budget_line(cfg: MatrixConfig) -> str:
    """ "Seeds 0, 1; budget 1500 steps × batch 64 (shapes: ...; stylegan: ...)": the README's
    and the page's."""
    datasets = "".join(
        f" ({d}: {_steps_words(cfg.train | cfg.train_datasets[d])})"
        for d in cfg.datasets
        if d in cfg.train_datasets
    )
    own = "".join(
        f" ({arch}: {_budget_words(cfg, arch)})"
        for arch in cfg.architectures
        if arch in cfg.train_overrides
    )
    numerics = "".join(
        f", {cfg.train[k]}{suffix}"
        for k, suffix in (("precision", ""), ("compile", " compile"))
        if cfg.train[k] != TRAIN_DEFAULTS[k]
    )
    return (
        f"Seeds {', '.join(map(str, cfg.seeds))}; budget {cfg.train['steps']} steps × batch "
        f"{cfg.train['batch_size']}{numerics}{datasets}{own}"
    )


def _first_seed_words(cfg: MatrixConfig) -> str:
    firsts = {(cfg.seeds_for(a) or cfg.seeds)[0] for a in cfg.architectures} | {cfg.seeds[0]}
    return f"seed {cfg.seeds[0]}" if len(firsts) == 1 else "first seed of each architecture"


@dataclass
class Section:
    """Everything shown for one matrix × device × dataset, for the markdown and the HTML page."""

    view: MatrixView
    dataset: str
    tables: dict[str, Table | None]
    explainers: list[tuple[str, str, Table]]  # (explainability evaluator, its doc line, table)
    domain: str | None
    samples: list[Figure]  # the real-data grid first, then one per row
    explanations: list[Figure]
    plots: list[tuple[str, str]]  # (caption, figure path)
    provenance: Table
    submissions: list[str]
    notes: dict[str, str] = field(default_factory=dict)  # a line under a table, by table name
    # (classifier head, table): code values matched to classes (InfoGAN's codes)
    per_class: list[tuple[str, Table]] = field(default_factory=list)
    # the answers first: best architecture, distance to real data, most faithful explainer, cost
    summary: list[str] = field(default_factory=list)
    # sample quality, one table per group the scores declare: (group, what it asks, table)
    quality: list[tuple[str, str, Table]] = field(default_factory=list)
    # intrinsic explanations, one table per evaluator like ``explainers``
    intrinsic: list[tuple[str, str, Table]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"{self.view.slug}-{self.dataset}"

    @property
    def title(self) -> str:
        look = " (quick look)" if self.view.cfg.quick_look else ""
        return f"{self.view.cfg.name} · {self.view.device_type.upper()} · {self.dataset}{look}"

    def figures(self) -> list[str]:
        """Every file under figures/ the section shows or links."""
        return [f.path for f in self.samples + self.explanations] + [p for _, p in self.plots]


def provenance_table(view: MatrixView, dataset: str) -> Table:
    """Where each row's results came from: trials, device, versions, git commit, host, dates."""
    out = Table(
        [
            Column("architecture", numeric=False),
            Column("trials finished / failed / n/a"),
            Column("device", numeric=False),
            Column("torch · python", numeric=False),
            Column("git commit", numeric=False),
            Column("host", numeric=False),
            Column("finished (UTC)", numeric=False),
            Column("origin", numeric=False),
        ],
        [],
    )
    for row in view.rows(dataset):
        recs = [
            rec
            for kind in ("train", "evaluate")
            for _, rec in view.cells(dataset, row, kind)
            if rec is not None
        ]
        if not recs:
            continue
        envs = [r["env"] for r in recs if r.get("env")]
        counts = [sum(r["status"] == s for r in recs) for s in ("finished", "failed", "n/a")]
        stamps = [r["finished"] for r in recs if r.get("finished")]
        dates = sorted({time.strftime("%Y-%m-%d", time.gmtime(t)) for t in stamps})
        if row.submitted:
            origin = f"submitted ({row.submitted}), {ORIGIN_WORDS[row.mark]} {row.mark}"
        else:
            origin = "maintainers' run"
        out.rows.append(
            TableRow(
                row.label,
                row.is_control,
                [
                    Cell(row.label, title=row.title),
                    Cell(" / ".join(map(str, counts)), counts[0]),
                    Cell("; ".join(sorted({e.get("device", "?") for e in envs})) or "?"),
                    Cell(
                        "; ".join(sorted({f"{e.get('torch')} · {e.get('python')}" for e in envs}))
                    ),
                    Cell(", ".join(sorted({short_commit(e.get("git_commit")) for e in envs}))),
                    Cell(", ".join(sorted({str(e.get("host")) for e in envs}))),
                    Cell(" – ".join(dict.fromkeys([dates[0], dates[-1]])) if dates else "–"),
                    Cell(origin),
                ],
            )
        )
    return out


def build_section(
    view: MatrixView,
    dataset: str,
    out: Path,
    figures: dict[tuple[str, str, str, int], str],
    explainer_figures: dict[tuple[str, str, str, int], list[tuple[str, str]]],
    class_tables: dict | None = None,
) -> Section:
    class_tables = class_tables or {}
    cfg = view.cfg
    gates = column_gates(view, dataset)
    q_rank = architecture_ranking(view, dataset, ("quality",), gates)
    # what the generators learned (dissection, directions, intrinsic explanations): ranked
    # apart from quality, and apart from the attribution methods that explain D
    g_rank = architecture_ranking(view, dataset, ("generator",), gates)
    cost, per_step = cost_table(view, dataset)
    # the attribution methods' bootstrap ranking, once for its table and the summary
    e_ranked = explainer_ranking(view, dataset)
    explainer_rank, explainer_note = explainer_ranking_table(view, dataset, e_ranked)
    tables = {
        "ranking": ranking_table(q_rank, g_rank, per_step),
        "validity": validity_table(view, dataset, gates),
        "cost": cost,
        "explainer_ranking": explainer_rank,
        "explainer_cost": explainer_cost_table(view, dataset),
        "winners": winners_table(view, dataset),
    }
    q_rates = {a: r.rate for a, r in q_rank.items()}
    e_rates = {a: r.rate for a, r in g_rank.items()}
    samples, explanations = [], []
    real = figures.get((dataset, "real data", "real", 0))
    if real:
        n = cfg.train["grid_size"]
        samples.append(
            Figure(
                "real data (reference)",
                real,
                f"real data, {dataset}: {n} held-out images",
                True,
                True,
            )
        )
    for row in view.rows(dataset):
        if row.reference == "real":
            continue
        seed = (cfg.seeds_for(row.architecture) or cfg.seeds)[0]
        key = (dataset, row.architecture, row.reference, seed)
        where = f"{row.label}, {dataset}, seed {seed}"
        if key in figures:
            what = "untrained network" if row.is_control else "trained"
            samples.append(
                Figure(
                    row.label,
                    figures[key],
                    f"{where}: {cfg.train['grid_size']} samples from fixed latents ({what})",
                    True,
                    row.is_control,
                )
            )
        for ev, rel in explainer_figures.get(key, []):
            explanations.append(
                Figure(
                    row.label,
                    rel,
                    f"{where}: {explainer_caption(ev, rel.rsplit('/', 1)[-1].split(ev + '-', 1)[-1])}",
                    False,
                    row.is_control,
                    ev,
                )
            )
    from ganbench.core.plots import tradeoff_plots

    plots = tradeoff_plots(
        out, f"figures/{view.slug}/{dataset}", q_rates, e_rates, per_step, dataset
    )
    submissions = [
        f"{name} {view.mark(name)[0]}: submitted in `runs/{sub.path.name}`; {view.mark(name)[1]}."
        for name, sub in view.submitted.items()
        if any(t.labels["dataset"] == dataset for t in sub.trials)
    ]
    quality, dropped = quality_tables(view, dataset, gates)
    notes = {"explainer_ranking": explainer_note} if explainer_note else {}
    if dropped:
        notes["quality"] = left_out_note(dropped)
    return Section(
        view,
        dataset,
        tables,
        explainer_tables(view, dataset, gates),
        domain_line(view, dataset),
        samples,
        explanations,
        plots,
        provenance_table(view, dataset),
        submissions,
        notes,
        per_class_tables(class_tables, dataset),
        summary_lines(view, dataset, gates, q_rank, per_step, e_ranked),
        quality,
        explainer_tables(view, dataset, gates, "intrinsic"),
    )


MD_HEADINGS = {
    "per_class": "**Codes per class** (head `{head}` of the domain network: per class, the "
    "share of the images generated from its matched code values that land in it; hover: the "
    "code values and the class's recall)",
    "quality": "**Sample quality: {group}** ({question}; mean ± std over seeds, p-values "
    "combined over seeds by Fisher's method; best architecture in bold; rows in italics are "
    "controls; *unranked* columns failed their validity gate)",
    "ranking": "**Ranking** (each architecture on its margin over its own untrained control: "
    "for quality, the share of the untrained-to-real-data gap it closes; the mean win rate "
    "over the columns that passed their validity gate, HELM-style, with its 95% bootstrap "
    "interval; ranks whose intervals overlap are ties; cost is shown, never ranked)",
    "validity": "**Metric validity** (per score: real data against the untrained controls in "
    "seed spreads, or how often it beats its control; Kendall τ between training steps and "
    "the score along one training's checkpoints; its mean rank agreement with the other "
    "scores; whether it ranks)",
    "cost": "**Cost** (training, mean ± std over seeds)",
    "explainer_ranking": "**Which attribution method is most faithful** (methods explaining "
    "the trained discriminators' logits, each on its margin over its own random control, "
    "win rate over D × score columns with its 95% bootstrap interval; sanity and cost shown, "
    "not ranked)",
    "explainability": "**Explainability** (explainers any architecture can be scored by, each "
    "beside its control where it declares one; mean ± std over seeds)",
    "explainer_cost": "**Explainer cost** (milliseconds of the attribution pass per explained "
    "image, mean ± std over seeds)",
    "winners": "**Which explainer wins** (per architecture and score that several explainers "
    "share: the best explainer, its value and its random control; hover for every explainer's)",
    "intrinsic": "**Intrinsic explanations** (what an architecture explains about itself by "
    "design; mean ± std over seeds; architectures an explainer does not apply to are left out)",
}


def _md_block(table: Table | None, heading: str, notes: list[str]) -> list[str]:
    if not table:
        return []
    return [heading, "", markdown_table(table, notes), ""] + [
        line for note in table.notes for line in (note, "")
    ]


def trial_counts(view: MatrixView) -> dict[str, int]:
    """The maintainers' trials of the matrix by status: finished, n/a (by design: an evaluator
    that does not apply), failed, not run."""
    counts = {"finished": 0, "n/a": 0, "failed": 0, "not run": 0}
    for t in view.own:
        rec = view.records.get(t.key)
        status = rec["status"] if rec else "not run"
        counts[status if status in counts else "not run"] += 1
    return counts


def trial_words(view: MatrixView) -> str:
    c = trial_counts(view)
    words = (
        f"{len(view.own)} trials: {c['finished']} finished, {c['n/a']} n/a by design (an "
        f"evaluator that does not apply to an architecture or dataset), {c['failed']} failed"
    )
    return words + (f", {c['not run']} not run yet" if c["not run"] else "")


def contention_words(view: MatrixView) -> str:
    """Whether the timed trainings had the CPU to themselves (``cpu_share``: the share of its
    threads' time a training loop got), in words; "" where nothing was timed on a CPU."""
    shares = []
    for t in view.own:
        rec = view.records.get(t.key)
        if t.kind == "train" and rec and rec["status"] == "finished":
            share = (rec.get("timings") or {}).get("cpu_share")
            if share is not None and (rec.get("timings") or {}).get("steps"):
                shares.append(share)
    if not shares:
        return ""
    contended = [x for x in shares if x < CONTENDED_SHARE]
    if not contended:
        return (
            f"Uncontended: each of the {len(shares)} timed trainings had at least "
            f"{min(shares):.0%} of its threads' CPU time"
        )
    return (
        f"{len(contended)} of {len(shares)} timed trainings shared the CPU with other jobs "
        f"(down to {min(contended):.0%} of their threads' time; marked contended in the cost "
        "tables), so their timings are slower than an idle machine's"
    )


def summary_block(sections: list[Section]) -> list[str]:
    """The summary lines of every section, for the top of README.md."""
    parts = ["## Summary", ""]
    for sec in sections:
        if sec.summary:
            parts += [f"**{sec.title}** ([details](#{_anchor(sec)}))", ""]
            parts += [f"- {line}" for line in sec.summary] + [""]
    return parts if len(parts) > 2 else []


def _anchor(sec: Section) -> str:
    return f"{sec.view.cfg.name}-{sec.view.device_type}-{sec.dataset}"


def _figure_links(figs: list[Figure]) -> list[str]:
    by_row: dict[str, list[Figure]] = defaultdict(list)
    for f in figs:
        by_row[f.label].append(f)
    return [
        f"- {_md_label(label)}: "
        + " · ".join(
            f"[{f.evaluator} {Path(f.path).stem.split(f.evaluator + '-', 1)[-1]}]({f.path})"
            for f in fs
        )
        for label, fs in by_row.items()
    ]


def render_view(view: MatrixView, sections: list[Section]) -> str:
    """The markdown of one matrix on one device: per dataset, the tables and figures."""
    cfg = view.cfg
    look = ": a quick look, not numbers to cite" if cfg.quick_look else ""
    contention = contention_words(view)
    parts = [f"## `{cfg.name}` matrix on {view.device_type.upper()}{look}", ""]
    if cfg.description:
        parts += [cfg.description, ""]
    parts += [
        f"{budget_line(cfg)}.",
        "",
        f"{trial_words(view)}.",
        "",
        f"Device: {'; '.join(view.devices()) or '?'}. Code: {', '.join(view.commits())}. "
        + (f"{contention}. " if contention else "")
        + f"Raw records: [`runs/{view.slug}.json`](runs/{view.slug}.json).",
        "",
    ]
    for refused in view.refused:
        parts += [f"> Refused: {refused}", ""]
    for sec in sections:
        notes: list[str] = []
        t = sec.tables
        parts += [f'<a id="{_anchor(sec)}"></a>', "", f"### {sec.dataset}", ""]
        parts += [f"- {line}" for line in sec.summary] + ([""] if sec.summary else [])
        for group, question, table in sec.quality:
            heading = MD_HEADINGS["quality"].format(group=group, question=question or group)
            parts += _md_block(table, heading, notes)
        if sec.notes.get("quality"):
            parts += [sec.notes["quality"], ""]
        if sec.domain:
            parts += [sec.domain, ""]
        parts += _md_block(t["ranking"], MD_HEADINGS["ranking"], notes)
        parts += _md_block(t["validity"], MD_HEADINGS["validity"], notes)
        if t["cost"]:
            parts += _md_block(t["cost"], MD_HEADINGS["cost"], notes)
        else:
            parts += [MD_HEADINGS["cost"], "", "_no finished training trials_", ""]
        shown = [f for f in sec.samples if not f.control or f.label == "real data (reference)"]
        if shown:
            parts += [
                f"**Samples** ({_first_seed_words(cfg)}, fixed latents; real data first)",
                "",
                "| | |",
                "|---|---|",
                *(f"| {_md_label(f.label)} | ![{f.caption}]({f.path}) |" for f in shown),
                "",
            ]
            controls = [f for f in sec.samples if f.control and f not in shown]
            if controls:
                parts += [
                    "Untrained controls' samples: "
                    + " · ".join(f"[{f.label}]({f.path})" for f in controls),
                    "",
                ]
        if t["explainer_ranking"]:
            parts += _md_block(t["explainer_ranking"], MD_HEADINGS["explainer_ranking"], notes)
            parts += [sec.notes.get("explainer_ranking", ""), ""]
        if t["explainer_cost"]:
            parts += _md_block(t["explainer_cost"], MD_HEADINGS["explainer_cost"], notes)
        if sec.explainers:
            parts += [MD_HEADINGS["explainability"], ""]
            for ev, doc, table in sec.explainers:
                parts += [f"*{ev}*: {doc}", ""] + _md_block(table, "", notes)[2:]
        parts += _md_block(t["winners"], MD_HEADINGS["winners"], notes)
        if sec.intrinsic:
            parts += [MD_HEADINGS["intrinsic"], ""]
            for ev, doc, table in sec.intrinsic:
                parts += [f"*{ev}*: {doc}", ""] + _md_block(table, "", notes)[2:]
        for head, table in sec.per_class:
            parts += _md_block(table, MD_HEADINGS["per_class"].format(head=head), notes)
        if sec.explanations:
            parts += [
                f"**Explanation figures** ({_first_seed_words(cfg)}; on the page, in the gallery)",
                "",
                *_figure_links(sec.explanations),
                "",
            ]
        if sec.plots:
            parts += ["**Trade-offs**", ""]
            parts += [f"![{cap}]({rel})" for cap, rel in sec.plots] + [""]
        if sec.submissions:
            parts += [f"- {line}" for line in sec.submissions] + [""]
        if notes:
            parts += [f"[^{i}]: {note}" for i, note in enumerate(notes, 1)] + [""]
    parts += ["### Legend", "", legend(view), ""]
    return "\n".join(parts)


def _md_label(label: str) -> str:
    return f"*{label}*" if "(untrained)" in label else label


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


def _prune_figures(folder: Path, out: Path, sections: list[Section], class_tables: dict) -> None:
    """Remove the files under one matrix's figures/ that no section shows or reads any more
    (other seeds' figures, figures of explainers left out of the matrix)."""
    used = {out / p for sec in sections for p in sec.figures()}
    used |= {path for files in class_tables.values() for _, path in files}
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file() and path not in used:
            path.unlink()


# results.csv columns left to the bundles, where each trial's environment is recorded once
CSV_LEFT_TO_BUNDLES = ("device", "torch")


@dataclass
class Rendered:
    written: list[Path]
    refused: list[str]


def render(store_path: Path, out: Path, configs: list[str] | None = None) -> list[Path]:
    """Render ``out``/README.md, index.html, results.csv, figures/ and runs/*.json; returns the
    files written."""
    return render_all(store_path, out, configs).written


def render_all(store_path: Path, out: Path, configs: list[str] | None = None) -> Rendered:
    out.mkdir(parents=True, exist_ok=True)
    sources = collect(
        store_path, out / "runs", maintainers_bundle_names(configs or shipped_configs())
    )
    if not sources.records:
        raise GanbenchError(
            f"nothing to render: no store at {store_path} and no bundles in {out / 'runs'}; "
            "run `ganbench run smoke` first"
        )
    views = []
    claimed = set()
    # quick looks (what `make run` runs) after the matrices whose numbers are for citing
    for cfg in sorted(map(load_config, configs or shipped_configs()), key=lambda c: c.quick_look):
        for device_type in DEVICE_TYPES:
            view = MatrixView(
                cfg,
                device_type,
                sources.records,
                sources.submissions,
                sources.bundled.get(f"{cfg.name}-{device_type}.json", {}),
            )
            claimed |= {(cfg.name, device_type)}
            if not view.empty:
                views.append(view)
    if not views:
        raise GanbenchError(
            f"no finished trial in {store_path} belongs to the matrices {configs or shipped_configs()}"
        )
    refused = list(sources.refused)
    for path, bundle in sources.submissions:
        if (bundle.get("matrix"), bundle.get("device_type")) not in claimed:
            refused.append(
                f"submitted bundle {path.name}: claims matrix {bundle.get('matrix')!r} on "
                f"{bundle.get('device_type')!r}, which is not rendered here"
            )
    for view in views:
        refused.extend(view.refused)
    artifacts = store_path.parent / "artifacts"
    date = time.strftime("%Y-%m-%d", time.gmtime())
    body = [
        "# ganbench leaderboard",
        "",
        f"Rendered by `ganbench leaderboard` on {date} from the project's own runs. "
        "Each matrix and device is shown apart: numbers from different matrices or devices are never averaged "
        "together. [`index.html`](index.html) is the same page with sortable tables, a dataset selector and a "
        "figure gallery (open it from disk, it needs no network). `results.csv` holds every number (one row per "
        "architecture × dataset × seed × score), `runs/` the raw trial records this page was rendered from.",
        "",
        REPRODUCTION_NOTE,
        "",
    ]
    tidy = []
    all_sections = []
    views_md = []
    for view in views:
        figures = _copy_figures(view, artifacts, out)
        explainer_figures = _copy_explainer_figures(view, artifacts, out)
        class_tables = _copy_per_class_tables(view, artifacts, out)
        sections = [
            build_section(view, d, out, figures, explainer_figures, class_tables)
            for d in view.cfg.datasets
        ]
        all_sections.extend(sections)
        views_md.append(render_view(view, sections))
        tidy.extend(tidy_rows(view))
        _prune_figures(out / "figures" / view.slug, out, sections, class_tables)
    body += summary_block(all_sections) + views_md
    written = []
    readme = out / "README.md"
    readme.write_text("\n".join(body), encoding="utf-8")
    written.append(readme)
    written.append(
        write_page(
            out / "index.html",
            all_sections,
            date,
            legends={view.slug: legend_rows(view) for view in views},
            trial_words={view.slug: trial_words(view) for view in views},
            budget_lines={view.slug: budget_line(view.cfg) for view in views},
            contention={view.slug: contention_words(view) for view in views},
            reproduction_note=REPRODUCTION_NOTE,
        )
    )
    csv_path = out / "results.csv"
    # the device and torch of each trial are in runs/*.json (join on trial_key): repeated on
    # every score's row they were a fifth of the file
    frame = pd.DataFrame(tidy).drop(columns=list(CSV_LEFT_TO_BUNDLES), errors="ignore")
    frame.to_csv(csv_path, index=False, float_format="%.10g")
    written.append(csv_path)
    for view in views:
        written.append(write_bundle(view, out))
    return Rendered(written, refused)
