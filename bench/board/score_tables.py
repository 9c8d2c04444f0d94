"""The score tables: rows (architectures and controls) × the primary scores of some
evaluators, each cell the mean ± std over seeds, best in bold among the columns that passed
their validity gate. Pure builders: a view in, a :class:`~ganbench.board.tables.Table` out.

- :func:`quality_tables`: the sample-quality scores, one table per group they declare;
- :func:`explainer_tables`: one table per explainer of a family (attribution and G
  explainers, or the intrinsic explanations);
- :func:`winners_table`: per architecture, the explainer that wins each shared score.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ganbench.board.formatting import values_text, values_title
from ganbench.board.ranks import shared_scores
from ganbench.board.tables import (
    Cell,
    Column,
    Table,
    TableRow,
    drop_uninformative,
    left_out_note,
    rank_cell,
)
from ganbench.board.validity import Gate, Ranked
from ganbench.board.view import MatrixView, Row, score_columns
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import OTHER, QUALITY_GROUPS, Score


def score_cell(view: MatrixView, dataset: str, row: Row, ev: str, score: Score) -> Cell:
    """One row's cell of one score: its values over the seeds (beside its control where it
    declares one), or why there is none (n/a, failed, not run)."""
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


def _may_rank(gates: dict[str, Gate], ev: str, score: Score) -> bool:
    """Whether a column passed its validity gate (a column without a gate never ranks)."""
    gate = gates.get(f"{ev}/{score.name}")
    return gate is not None and gate.ranked


def score_table(
    view: MatrixView,
    dataset: str,
    evaluators: list[str],
    gates: dict[str, Gate],
    ranking: dict[str, Ranked] | None = None,
    keep: set[tuple[str, str]] | None = None,
) -> Table | None:
    """Rows × primary scores of ``evaluators`` (those in ``keep`` where given), best in bold
    among the architectures in the columns that passed their validity gate (the others
    greyed, with the reason on hover), and each architecture's rank interval where
    ``ranking`` is given. Rows whose every cell is ``n/a`` are left out, and so is an
    untrained control without its trained network (a note says why)."""
    columns = score_columns(view.cfg, evaluators)
    if keep is not None:
        columns = [(ev, s) for ev, s in columns if (ev, s.name) in keep]
    if not columns:
        return None
    rows = view.rows(dataset)
    cells = [[_gated_cell(view, dataset, row, ev, s, gates) for ev, s in columns] for row in rows]
    for c, (ev, score) in enumerate(columns):
        if score.direction != "none" and _may_rank(gates, ev, score):
            _bold_best(rows, [row_cells[c] for row_cells in cells], score)
    shown = [i for i in range(len(rows)) if any(c.status != "n/a" for c in cells[i])]
    shown, notes = _without_lonely_controls(rows, cells, shown)
    if not shown or all(rows[i].is_control for i in shown):
        return None
    out = Table(
        [Column("architecture", numeric=False), Column("seeds")]
        + [_score_column(ev, s, gates.get(f"{ev}/{s.name}")) for ev, s in columns]
        + ([Column("rank ↓")] if ranking is not None else []),
        [],
        notes,
    )
    for i in shown:
        out.rows.append(_score_row(view, dataset, rows[i], cells[i], ranking))
    return out


def _gated_cell(
    view: MatrixView, dataset: str, row: Row, ev: str, score: Score, gates: dict[str, Gate]
) -> Cell:
    cell = score_cell(view, dataset, row, ev, score)
    gate = gates.get(f"{ev}/{score.name}")
    cell.unranked = gate is not None and not gate.ranked
    return cell


def _bold_best(rows: list[Row], column: list[Cell], score: Score) -> None:
    """Put the best value of one column in bold, among the architectures: controls are
    context, not contenders."""
    have = {
        i: c.sort
        for i, (r, c) in enumerate(zip(rows, column, strict=True))
        if not r.is_control and c.sort is not None
    }
    if have:
        best = max(have.values()) if score.direction == "higher" else min(have.values())
        for i, v in have.items():
            column[i].bold = v == best


def _without_lonely_controls(
    rows: list[Row], cells: list[list[Cell]], shown: list[int]
) -> tuple[list[int], list[str]]:
    """``shown`` without the untrained controls whose trained network is not shown (alone a
    control compares nothing), and a note on each one left out, saying why."""
    contenders = {rows[i].architecture for i in shown if not rows[i].is_control}
    kept, notes = list(shown), []
    for i in [i for i in shown if rows[i].reference == "untrained"]:
        if rows[i].architecture in contenders:
            continue
        kept.remove(i)
        trained = next(
            (
                j
                for j, r in enumerate(rows)
                if r.reference == "trained" and r.architecture == rows[i].architecture
            ),
            None,
        )
        why = "it has no trained row"
        if trained is not None:
            reasons = [c.title for c in cells[trained] if c.status in ("n/a", "failed") and c.title]
            why = (
                f"the trained network's cells are n/a or failed ({reasons[0]})" if reasons else why
            )
        notes.append(f"{rows[i].label} is left out: {why}.")
    return kept, notes


def _score_column(ev: str, s: Score, gate: Gate | None) -> Column:
    unranked = gate is not None and not gate.ranked
    return Column(
        f"{s.name} {s.arrow}".strip() + (" (unranked)" if unranked else ""),
        ev,
        s,
        unranked=unranked,
        note=gate.reason if gate is not None else "",
    )


def _score_row(
    view: MatrixView,
    dataset: str,
    row: Row,
    cells: list[Cell],
    ranking: dict[str, Ranked] | None,
) -> TableRow:
    """A score table's row: the label, the seeds scored, the score cells, and the rank
    where the table has a rank column."""
    evals = view.cells(dataset, row, "evaluate")
    seeds = len({t.labels["seed"] for t, rec in evals if rec and rec["status"] == "finished"})
    extra = []
    if ranking is not None:
        r = ranking.get(row.label)
        extra = [rank_cell(r) if r else Cell("" if row.is_control else "–")]
    return TableRow(
        row.label,
        row.is_control,
        [Cell(row.label, title=row.title), Cell(str(seeds), seeds), *cells, *extra],
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
        cells = [_winner_cell(view, dataset, row, evaluators, score) for score in scores]
        if any(c.sort is not None for c in cells):
            out.rows.append(
                TableRow(row.label, row.is_control, [Cell(row.label, title=row.title), *cells])
            )
    return out if out.rows else None


def _winner_cell(
    view: MatrixView, dataset: str, row: Row, evaluators: list[str], score: Score
) -> Cell:
    """The explainer that does best on ``score`` in ``row``, with its value; hover: every
    explainer's value."""
    have = []
    for ev in evaluators:
        cls = evaluator_registry(ev).get(ev)
        if any(s.name == score.name for s in cls.scores):
            cell = score_cell(view, dataset, row, ev, cls.score(score.name))
            if cell.sort is not None:
                have.append((cell.sort, ev, cell.text))
    if not have:
        return Cell("–")
    pick = max if score.direction == "higher" else min
    value, ev, text = pick(have, key=lambda h: h[0])
    others = "; ".join(f"{e}: {v:.3g}" for v, e, _ in sorted(have, key=lambda h: h[1]))
    return Cell(f"{ev} {text}", value, others)
