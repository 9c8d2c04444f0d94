"""The table model every builder returns and both pages show: columns (score columns carry
their declaration), rows of cells (the text shown, the number it sorts by, what hovering
tells), and the notes under a table. Besides the model, the helpers the builders share:
leaving out the columns that tell nothing, and a rank's cell.

No builder here reads a view: the table builders are in ``score_tables``, ``cost_tables``
and ``rank_tables``; ``markdown`` and ``html`` print the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ganbench.board.validity import Ranked
from ganbench.core.scores import Score


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


def drop_uninformative(table: Table, min_rows: int = 1) -> tuple[Table | None, list[str]]:
    """``table`` without the score columns that carry nothing: n/a in every row, the same
    value in every row, or a value in fewer than ``min_rows`` contender rows. Returns the
    table (None when no score column is left) and one phrase per column left out, saying why.
    A column with a failure is always kept: the failure must show."""
    keep, dropped = [], []
    for c, col in enumerate(table.columns):
        why = None if col.score is None else _uninformative(table, c, col.score, min_rows)
        if why is None:
            keep.append(c)
        else:
            dropped.append(why)
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


def _uninformative(table: Table, c: int, score: Score, min_rows: int) -> str | None:
    """Why score column ``c`` tells nothing (a phrase naming it), or None to keep it."""
    cells = [r.cells[c] for r in table.rows]
    valued = [x for x in cells if x.sort is not None]
    contenders = [r for r in table.rows if not r.control and r.cells[c].sort is not None]
    if any(x.status == "failed" for x in cells):
        return None
    if not valued:
        why = next((x.title for x in cells if x.status == "n/a" and x.title), "no value")
        return f"`{score.name}` (n/a in every row: {why})"
    if len(contenders) < min_rows:
        who = ", ".join(r.label for r in contenders) or "no architecture"
        return f"`{score.name}` (a value for {who} only)"
    if len(valued) > 1 and len({x.text for x in valued}) == 1 and len(valued) == len(cells):
        return f"`{score.name}` ({valued[0].text} in every row)"
    return None


def left_out_note(dropped: list[str]) -> str:
    """The note under a table that names the columns :func:`drop_uninformative` left out."""
    return (
        "Left out, as they tell no architecture from another here: "
        + "; ".join(dropped)
        + (". Their numbers are in results.csv.")
    )


def rank_cell(r: Ranked) -> Cell:
    """A contender's rank (its bootstrap interval; a tie says with whom), sorting by rank."""
    text = r.rank_words()
    title = (
        f"rank {r.rank} (95% bootstrap interval {r.rank_words()}); mean win rate {r.rate:.2f} "
        f"[{r.rate_low:.2f}, {r.rate_high:.2f}] over {r.columns} columns"
    )
    if r.tied_with:
        text += " (tie)"
        title += "; tied with " + ", ".join(r.tied_with)
    return Cell(text, r.rank, title)


def rate_cell(r: Ranked) -> Cell:
    """A contender's mean win rate with its 95% bootstrap interval."""
    return Cell(f"{r.rate:.2f} [{r.rate_low:.2f}, {r.rate_high:.2f}]", r.rate)
