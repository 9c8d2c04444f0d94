"""The tables of the rankings and of the gates behind them. Pure builders: rankings or a
view in, a :class:`~ganbench.board.tables.Table` out.

- :func:`ranking_table`: the architectures by quality rank, beside their rank on what their
  generators learned and their training cost;
- :func:`explainer_ranking_table`: the attribution methods by faithfulness, beside their
  sanity and cost;
- :func:`validity_table`: per directional score, whether it separates what it must, improves
  along the checkpoints, agrees with the other scores, and ranks.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ganbench.board.formatting import cost_text, cost_unit
from ganbench.board.ranks import SANITY_SCORES, against_control, explainer_ranking
from ganbench.board.tables import Cell, Column, Table, TableRow, rank_cell, rate_cell
from ganbench.board.validity import Gate, Ranked, monotonicity, rank_agreement
from ganbench.board.view import (
    MatrixView,
    Row,
    column_kind,
    rows_by_reference,
    score_columns,
    seed_values,
)
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score
from ganbench.run.trials import CHECKPOINT

# the validity table's words for a column's kind (:func:`ganbench.board.view.column_kind`)
KIND_WORDS = {"quality": "quality", "generator": "what G learned", "discriminator": "explains D"}


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
        cells = [rank_cell(q), Cell(arch), rate_cell(q)]
        if learned:
            e = learned.get(arch)
            cells += [rank_cell(e), rate_cell(e)] if e else [Cell("–"), Cell("–")]
        step = per_step.get(arch)
        cells.append(Cell(cost_text([step] if step is not None else [], "s")[0], step))
        out.rows.append(TableRow(arch, False, cells))
    return out


def explainer_ranking_table(
    view: MatrixView, dataset: str, ranked: tuple[dict[str, Ranked], int, int] | None = None
) -> tuple[Table | None, str]:
    """Which attribution method is most faithful on this dataset's trained Ds, beside its
    sanity (cascading randomisation) and cost, neither of which enters the rank; ``ranked``:
    :func:`~ganbench.board.ranks.explainer_ranking`'s result where the caller has it."""
    ranking, used, offered = ranked or explainer_ranking(view, dataset)
    if not ranking:
        return None, ""
    trained, _, _ = rows_by_reference(view, dataset)
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
        out.rows.append(
            TableRow(
                ev,
                False,
                [rank_cell(r), Cell(ev), rate_cell(r), *_method_cells(view, dataset, trained, ev)],
            )
        )
    note = (
        f"{used} of {offered} D × score columns rank: in the others no method beats its random "
        "control beyond the seeds' spread."
    )
    return out, note


def _method_cells(view: MatrixView, dataset: str, trained: list[Row], ev: str) -> list[Cell]:
    """An attribution method's cells beside its rank: on how many score × D pairs it beats
    its random control, its median randomisation ρ and its median cost per image."""
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
            b, n, _ = against_control(view, dataset, trained, ev, s)
            beaten, compared = beaten + b, compared + n
    for row in trained:
        for name, bucket in (("randomisation_rho", rho), ("s_per_image", cost)):
            if any(s.name == name for s in cls.scores):
                bucket += seed_values(view, dataset, row, ev, cls.score(name))[0]
    rho_m = float(np.median(rho)) if rho else None
    cost_m = float(np.median(cost)) if cost else None
    return [
        Cell(
            f"{beaten} of {compared}",
            beaten / compared if compared else None,
            "score × D pairs where the method beats its random control beyond the seeds' spread",
        ),
        Cell("–" if rho_m is None else f"{rho_m:.3f}", rho_m, "median over the trained Ds"),
        Cell(
            cost_text([cost_m] if cost_m is not None else [], "s")[0],
            cost_m,
            "median over the trained Ds",
        ),
    ]


def checkpoint_series(
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
    cols = [
        (ev, s) for ev, s in score_columns(view.cfg) if f"{ev}/{s.name}" in gates and not s.cost
    ]
    if not cols:
        return None
    agreement = _agreement(view, dataset, cols)
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
    for ev, s in cols:
        col = f"{ev}/{s.name}"
        gate = gates[col]
        kind = column_kind(ev)
        mono = (
            monotonicity(checkpoint_series(view, dataset, ev, s), s.direction)
            if kind == "quality"
            else None
        )
        cells = [
            Cell(f"{s.name} ({ev})"),
            Cell(KIND_WORDS[kind]),
            _separation_cell(gate),
            _monotonicity_cell(mono),
            _agreement_cell(agreement.get(col, {})),
            Cell("yes" if gate.ranked else f"no: {gate.reason}", int(gate.ranked)),
        ]
        out.rows.append(TableRow(col, False, cells))
    return out


def _agreement(
    view: MatrixView, dataset: str, cols: list[tuple[str, Score]]
) -> dict[str, dict[str, float]]:
    """Per column, its rank agreement (Kendall τ) with each other column of its kind, over
    the trained architectures' means."""
    trained, _, _ = rows_by_reference(view, dataset)
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
    return agreement


def _separation_cell(gate: Gate) -> Cell:
    if gate.separation is not None:
        return Cell(
            f"real vs untrained {gate.separation.words()}",
            gate.separation.spreads if math.isfinite(gate.separation.spreads) else 1e9,
            gate.reason,
        )
    return Cell(gate.reason.split(";")[0] if gate.of else "–", gate.passed, gate.reason)


def _monotonicity_cell(mono: tuple | None) -> Cell:
    if not mono:
        return Cell("–")
    return Cell(
        f"{mono[0]:+.2f} ({mono[1]} of {mono[2]} monotone)",
        mono[0],
        "Kendall τ between training steps and the score, signed so that +1 means it "
        "improves at every checkpoint; mean over the architectures",
    )


def _agreement_cell(agree: dict[str, float]) -> Cell:
    if not agree:
        return Cell("–")
    return Cell(
        f"{np.mean(list(agree.values())):+.2f}",
        float(np.mean(list(agree.values()))),
        "; ".join(f"{k}: {v:+.2f}" for k, v in sorted(agree.items())),
    )
