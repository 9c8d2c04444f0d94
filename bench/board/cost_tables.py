"""The cost tables: what training each architecture cost (:func:`cost_table`) and what each
explainer costs per explained image (:func:`explainer_cost_table`). Costs are shown and never
ranked. Pure builders: a view in, a :class:`~ganbench.board.tables.Table` out.

The cost figures of train trials are declared here once (:data:`COST_SCORES`), like every
evaluator's scores, for the tables, the legend and results.csv.
"""

from __future__ import annotations

import numpy as np

from ganbench.board.formatting import cost_text, cost_unit
from ganbench.board.score_tables import score_cell
from ganbench.board.tables import Cell, Column, Table, TableRow
from ganbench.board.view import MatrixView, Row, seed_values
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score

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

# costs per step or per image, printed in ms; whole-run costs stay in seconds
PER_ITEM_COSTS = ("s_per_step_median", "s_per_image")

# a CPU train trial whose loop got less than this share of its threads' time (``cpu_share``)
# ran beside other jobs; its row of the cost table says so
CONTENDED_SHARE = 0.75


def _cost_header_unit(s: Score) -> str:
    if s.name in PER_ITEM_COSTS:
        return cost_unit(s.unit, s.name.split("_per_")[1].split("_")[0])
    return s.unit


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
        cells = _train_cells(row, trains)
        cells += _timing_cells(row, [rec["timings"] for rec in trains], per_step)
        cells.append(_evaluations_cell(view, dataset, row, len(trains)))
        out.rows.append(TableRow(row.label, False, cells))
    return (out if out.rows else None), per_step


def _train_cells(row: Row, trains: list[dict]) -> list[Cell]:
    """The label, the devices (marked where the CPU was shared) and the budget of a row's
    finished trainings."""
    budget = trains[0]["config"]["budget"]
    devices = sorted({(rec.get("env") or {}).get("device", "?") for rec in trains})
    shares = [rec["timings"]["cpu_share"] for rec in trains if "cpu_share" in rec["timings"]]
    contended = [x for x in shares if x < CONTENDED_SHARE]
    device_cell = Cell("; ".join(devices))
    if contended:  # another job shared the CPU: these timings are slower than idle ones
        device_cell = Cell(
            device_cell.text + " (contended)",
            title=f"{len(contended)} of {len(trains)} seeds trained while other jobs "
            f"shared the CPU: the loop had {min(contended):.0%} of its threads' time "
            f"(below {CONTENDED_SHARE:.0%}), so its timings are slower than an idle machine's",
        )
    return [
        Cell(row.label, title=row.title),
        device_cell,
        Cell(f"{budget['steps']} × {budget['batch_size']}", budget["steps"] * budget["batch_size"]),
    ]


def _timing_cells(row: Row, timings: list[dict], per_step: dict[str, float]) -> list[Cell]:
    """The primary cost figures over the seeds, then the parameter counts; records the row's
    median seconds per step in ``per_step``."""
    cells = []
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
    return cells


def _evaluations_cell(view: MatrixView, dataset: str, row: Row, seeds: int) -> Cell:
    """Seconds of all evaluations of one seed of the row."""
    evals = [
        rec["timings"]["evaluate_s"]
        for _, rec in view.cells(dataset, row, "evaluate")
        if rec and rec["status"] == "finished"
    ]
    eval_s = float(np.sum(evals)) / max(1, seeds) if evals else None
    return Cell(
        cost_text([eval_s], "s", convert=False)[0] if evals else "–",
        eval_s,
        "seconds of all evaluations of one seed",
    )


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
        cells, devices = [Cell(row.label, title=row.title), Cell("")], set()
        for ev in evaluators:
            cell, where = _explainer_cost_cell(view, dataset, row, ev)
            cells.append(cell)
            devices |= where
        cells[1] = Cell("; ".join(sorted(devices)))
        if devices:  # an explainer was timed in this row
            out.rows.append(TableRow(row.label, False, cells))
    return out if out.rows else None


def _explainer_cost_cell(
    view: MatrixView, dataset: str, row: Row, ev: str
) -> tuple[Cell, set[str]]:
    """One explainer's cost per image in one row, and the devices it was timed on."""
    score = evaluator_registry(ev).get(ev).score("s_per_image")
    cell = score_cell(view, dataset, row, ev, score)
    if cell.sort is None:
        return cell, set()
    text, mean = cost_text(seed_values(view, dataset, row, ev, score)[0], "s")
    devices = {
        (rec.get("env") or {}).get("device", "?")
        for _, rec in view.cells(dataset, row, "evaluate", ev)
        if rec and rec["status"] == "finished"
    }
    return Cell(text, mean, cell.title), devices
