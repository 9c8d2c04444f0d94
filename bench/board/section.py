"""A section: everything the board shows for one matrix × device × dataset, built once and
printed by both pages (``markdown`` for README.md, ``html`` for index.html).

:func:`build_section` gates the score columns, ranks the architectures and the attribution
methods, builds every table (``score_tables``, ``cost_tables``, ``rank_tables``), the summary
sentences, and the figures the section shows. The provenance table (where each row's results
came from) and the per-class tables of InfoGAN-style codes are built here too, as nothing
else shows them.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ganbench.board.cost_tables import cost_table, explainer_cost_table
from ganbench.board.figures import Figure, explainer_caption
from ganbench.board.rank_tables import explainer_ranking_table, ranking_table, validity_table
from ganbench.board.ranks import architecture_ranking, column_gates, explainer_ranking
from ganbench.board.score_tables import explainer_tables, quality_tables, winners_table
from ganbench.board.sentences import domain_line
from ganbench.board.summary import summary_lines
from ganbench.board.tables import Cell, Column, Table, TableRow, left_out_note
from ganbench.board.view import ORIGIN_WORDS, MatrixView, short_commit
from ganbench.core.plots import tradeoff_plots

# (dataset, architecture, reference, seed): the row and seed a figure belongs to
FigureKey = tuple[str, str, str, int]


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
    def anchor(self) -> str:
        """The section's anchor in README.md, which the summary links to."""
        return f"{self.view.cfg.name}-{self.view.device_type}-{self.dataset}"

    @property
    def title(self) -> str:
        look = " (quick look)" if self.view.cfg.quick_look else ""
        return f"{self.view.cfg.name} · {self.view.device_type.upper()} · {self.dataset}{look}"

    def shown_samples(self) -> list[Figure]:
        """The sample grids README.md shows: the trained networks' and the real data's."""
        return [f for f in self.samples if not f.control or f.label == "real data (reference)"]

    def control_samples(self) -> list[Figure]:
        """The untrained controls' sample grids, which README.md only links."""
        return [f for f in self.samples if f.control and f.label != "real data (reference)"]

    def figures(self) -> list[str]:
        """Every file under figures/ the section shows or links."""
        return [f.path for f in self.samples + self.explanations] + [p for _, p in self.plots]


def build_section(
    view: MatrixView,
    dataset: str,
    out: Path,
    figures: dict[FigureKey, str],
    explainer_figures: dict[FigureKey, list[tuple[str, str]]],
    class_tables: dict | None = None,
) -> Section:
    """The section of ``dataset``: its tables, summary and figures (``figures`` and
    ``explainer_figures``: the copies :mod:`ganbench.board.figures` made; the trade-off plots
    are drawn under ``out``)."""
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
    samples, explanations = _figures(view, dataset, figures, explainer_figures)
    plots = tradeoff_plots(
        out,
        f"figures/{view.slug}/{dataset}",
        {a: r.rate for a, r in q_rank.items()},
        {a: r.rate for a, r in g_rank.items()},
        per_step,
        dataset,
    )
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
        _submission_lines(view, dataset),
        notes,
        per_class_tables(class_tables or {}, dataset),
        summary_lines(view, dataset, gates, q_rank, per_step, e_ranked),
        quality,
        explainer_tables(view, dataset, gates, "intrinsic"),
    )


def _figures(
    view: MatrixView,
    dataset: str,
    figures: dict[FigureKey, str],
    explainer_figures: dict[FigureKey, list[tuple[str, str]]],
) -> tuple[list[Figure], list[Figure]]:
    """The section's sample grids (the real-data grid first, then one per row) and its
    explainers' figures, each with its caption."""
    cfg = view.cfg
    samples, explanations = [], []
    real = figures.get((dataset, "real data", "real", 0))
    if real:
        n = cfg.train["grid_size"]
        caption = f"real data, {dataset}: {n} held-out images"
        samples.append(Figure("real data (reference)", real, caption, True, True))
    for row in view.rows(dataset):
        if row.reference == "real":
            continue
        seed = (cfg.seeds_for(row.architecture) or cfg.seeds)[0]
        key = (dataset, row.architecture, row.reference, seed)
        where = f"{row.label}, {dataset}, seed {seed}"
        if key in figures:
            what = "untrained network" if row.is_control else "trained"
            caption = f"{where}: {cfg.train['grid_size']} samples from fixed latents ({what})"
            samples.append(Figure(row.label, figures[key], caption, True, row.is_control))
        for ev, rel in explainer_figures.get(key, []):
            shows = explainer_caption(ev, rel.rsplit("/", 1)[-1].split(ev + "-", 1)[-1])
            explanations.append(
                Figure(row.label, rel, f"{where}: {shows}", False, row.is_control, ev)
            )
    return samples, explanations


def _submission_lines(view: MatrixView, dataset: str) -> list[str]:
    """One line per submitted architecture with trials on ``dataset``: its bundle and mark."""
    return [
        f"{name} {view.mark(name)[0]}: submitted in `runs/{sub.path.name}`; {view.mark(name)[1]}."
        for name, sub in view.submitted.items()
        if any(t.labels["dataset"] == dataset for t in sub.trials)
    ]


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
        cells = [
            Cell(row.label, title=row.title),
            Cell(" / ".join(map(str, counts)), counts[0]),
            Cell("; ".join(sorted({e.get("device", "?") for e in envs})) or "?"),
            Cell("; ".join(sorted({f"{e.get('torch')} · {e.get('python')}" for e in envs}))),
            Cell(", ".join(sorted({short_commit(e.get("git_commit")) for e in envs}))),
            Cell(", ".join(sorted({str(e.get("host")) for e in envs}))),
            Cell(" – ".join(dict.fromkeys([dates[0], dates[-1]])) if dates else "–"),
            Cell(origin),
        ]
        out.rows.append(TableRow(row.label, row.is_control, cells))
    return out


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
    return [(head, _per_class_table(entries)) for head, entries in sorted(by_head.items())]


def _per_class_table(entries: list[tuple[str, int, dict]]) -> Table:
    """One head's table of :func:`per_class_tables`: (architecture, seed, per-class data)."""
    names = entries[0][2].get("class_names") or [str(c["class"]) for c in entries[0][2]["classes"]]
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
        cells += [_class_cell(by_class.get(i)) for i in range(len(names))]
        table.rows.append(TableRow(f"{arch} seed {seed}", False, cells))
    return table


def _class_cell(c: dict | None) -> Cell:
    if c is None or not c.get("codes"):
        return Cell("–", None, "no code value matched to this class")
    return Cell(
        f"{c['accuracy']:.2f}",
        c["accuracy"],
        f"code values {', '.join(map(str, c['codes']))}: {c['correct']} of {c['n']} "
        f"images in this class; recall {c.get('recall', float('nan')):.2f}",
    )
