"""``leaderboard/README.md``: the same sections as the HTML page, as GitHub markdown, from the
Jinja templates ``templates/readme.md.j2`` (the page: title, summary, one part per matrix and
device) and ``templates/section.md.j2`` (one dataset's tables and figures).

The templates hold the layout and the words around the tables; this module prints the
tables themselves (:func:`markdown_table`: controls in italics, best in bold, failures as
footnotes, wide tables split by columns so that a forge page shows them without scrolling).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from tabulate import tabulate

from ganbench.board.figures import Figure
from ganbench.board.section import Section
from ganbench.board.sentences import first_seed_words
from ganbench.board.tables import Table, TableRow
from ganbench.board.view import MatrixView

# the widest line a README.md table may have: wider tables are split into several, each
# repeating the first column, so that a forge page shows them without scrolling
README_WIDTH = 160


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ganbench.board", "templates"),
        autoescape=False,  # markdown, not HTML: the text is written as it is
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    env.filters["md_table"] = markdown_table
    env.filters["md_label"] = md_label
    env.filters["first_seed_words"] = first_seed_words
    env.filters["explanation_links"] = explanation_links
    return env


def write_readme(
    path: Path,
    views: list[tuple[MatrixView, list[Section]]],
    date: str,
    *,
    legends: dict,
    trial_words: dict,
    budget_lines: dict,
    contention: dict,
    reproduction_note: str,
) -> Path:
    """Render README.md for ``views`` (each with its sections) to ``path``; the other
    arguments are each view's sentences (by view slug) that the HTML page shows too."""
    text = (
        _environment()
        .get_template("readme.md.j2")
        .render(
            views=views,
            summaries=[sec for _, sections in views for sec in sections if sec.summary],
            date=date,
            legends=legends,
            trial_words=trial_words,
            budget_lines=budget_lines,
            contention=contention,
            reproduction_note=reproduction_note,
        )
    )
    path.write_text(text, encoding="utf-8")
    return path


def markdown_table(table: Table, notes: list[str], width: int = README_WIDTH) -> str:
    """A table as GitHub markdown: controls in italics, best in bold, failures as footnotes
    (each failure's text is added to ``notes``, the section's footnotes, once); split by
    columns into tables no wider than ``width`` characters."""
    lines = [
        [_cell_text(table, row, c, notes) for c in range(len(table.columns))] for row in table.rows
    ]
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


def _cell_text(table: Table, row: TableRow, c: int, notes: list[str]) -> str:
    """One cell as markdown; a failure becomes a footnote reference."""
    col, cell = table.columns[c], row.cells[c]
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
    return text.replace("|", "\\|")


def md_label(label: str) -> str:
    """A row label as README.md shows it beside a figure: untrained controls in italics."""
    return f"*{label}*" if "(untrained)" in label else label


def explanation_links(figs: list[Figure]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The explainers' figures by row: (row label, [(link text, path)]), the link text the
    explainer and what the file shows."""
    by_row: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for f in figs:
        shows = Path(f.path).stem.split(f.evaluator + "-", 1)[-1]
        by_row[f.label].append((f"{f.evaluator} {shows}", f.path))
    return list(by_row.items())
