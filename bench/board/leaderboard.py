"""Rendering the leaderboard from the store and from result bundles: the orchestration.

For each matrix config and device type, the trials of the matrix are looked up by key
(so results of different matrices or devices are never mixed; :mod:`ganbench.board.view`),
aggregated over seeds into one section per dataset (:mod:`ganbench.board.section`), and
written as ``README.md`` (:mod:`ganbench.board.markdown`), ``index.html``
(:mod:`ganbench.board.html`), ``results.csv`` and ``runs/<matrix>-<device>.json`` (the raw
records, so the leaderboard can be re-rendered without the store;
:mod:`ganbench.board.data_files`), and ``figures/`` (:mod:`ganbench.board.figures`).
Submitted bundles (``runs/submitted-*.json``, written by ``ganbench export``) are checked
against the matrix they claim (:mod:`ganbench.board.submission`) and shown as rows marked †
until the maintainers' own runs hold the same trial keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ganbench.board.data_files import tidy_rows, write_bundle, write_csv
from ganbench.board.figures import (
    copy_explainer_figures,
    copy_per_class_tables,
    copy_sample_grids,
    prune_figures,
)
from ganbench.board.html import write_page
from ganbench.board.markdown import write_readme
from ganbench.board.section import Section, build_section
from ganbench.board.sentences import budget_line, contention_words, legend_rows, trial_words
from ganbench.board.sources import DEVICE_TYPES, Sources, collect, maintainers_bundle_names
from ganbench.board.view import REPRODUCTION_NOTE, MatrixView
from ganbench.core.errors import GanbenchError
from ganbench.run.config import MatrixConfig
from ganbench.run.config_load import load_config, shipped_configs
from ganbench.run.layout import artifacts_root


@dataclass
class Rendered:
    written: list[Path]
    refused: list[str]


def render(store_path: Path, out: Path, configs: list[str] | None = None) -> list[Path]:
    """Render ``out``/README.md, index.html, results.csv, figures/ and runs/*.json; returns the
    files written."""
    return render_all(store_path, out, configs).written


def render_all(store_path: Path, out: Path, configs: list[str] | None = None) -> Rendered:
    """Render the leaderboard of ``configs`` (default: the shipped matrices) into ``out``
    from the store at ``store_path`` and the bundles in ``out``/runs; returns the files
    written and every bundle refused, with why."""
    out.mkdir(parents=True, exist_ok=True)
    configs = configs or shipped_configs()
    sources = collect(store_path, out / "runs", maintainers_bundle_names(configs))
    if not sources.records:
        raise GanbenchError(
            f"nothing to render: no store at {store_path} and no bundles in {out / 'runs'}; "
            "run `ganbench run smoke` first"
        )
    # quick looks (what `make run` runs) after the matrices whose numbers are for citing
    cfgs = sorted(map(load_config, configs), key=lambda c: c.quick_look)
    views = _views(sources, cfgs)
    if not views:
        raise GanbenchError(f"no finished trial in {store_path} belongs to the matrices {configs}")
    refused = _refused(sources, cfgs) + [r for view in views for r in view.refused]
    artifacts = artifacts_root(store_path)
    sections = [(view, _sections(view, artifacts, out)) for view in views]
    date = time.strftime("%Y-%m-%d", time.gmtime())
    words = {
        "legends": {view.slug: legend_rows(view) for view in views},
        "trial_words": {view.slug: trial_words(view) for view in views},
        "budget_lines": {view.slug: budget_line(view.cfg) for view in views},
        "contention": {view.slug: contention_words(view) for view in views},
        "reproduction_note": REPRODUCTION_NOTE,
    }
    written = [
        write_readme(out / "README.md", sections, date, **words),
        write_page(
            out / "index.html", [sec for _, secs in sections for sec in secs], date, **words
        ),
        write_csv(out / "results.csv", [row for view in views for row in tidy_rows(view)]),
    ]
    written += [write_bundle(view, out) for view in views]
    return Rendered(written, refused)


def _views(sources: Sources, cfgs: list[MatrixConfig]) -> list[MatrixView]:
    """A view per matrix and device type that has a finished trial."""
    views = []
    for cfg in cfgs:
        for device_type in DEVICE_TYPES:
            view = MatrixView(
                cfg,
                device_type,
                sources.records,
                sources.submissions,
                sources.bundled.get(f"{cfg.name}-{device_type}.json", {}),
            )
            if not view.empty:
                views.append(view)
    return views


def _refused(sources: Sources, cfgs: list[MatrixConfig]) -> list[str]:
    """The bundles refused while collecting, and the submissions that claim a matrix and
    device not rendered here."""
    claimed = {(cfg.name, dt) for cfg in cfgs for dt in DEVICE_TYPES}
    refused = list(sources.refused)
    for path, bundle in sources.submissions:
        if (bundle.get("matrix"), bundle.get("device_type")) not in claimed:
            refused.append(
                f"submitted bundle {path.name}: claims matrix {bundle.get('matrix')!r} on "
                f"{bundle.get('device_type')!r}, which is not rendered here"
            )
    return refused


def _sections(view: MatrixView, artifacts: Path, out: Path) -> list[Section]:
    """The view's sections, one per dataset, after copying the figures they show from the
    store's ``artifacts``; the view's figures no section shows any more are removed."""
    figures = copy_sample_grids(view, artifacts, out)
    explainer_figures = copy_explainer_figures(view, artifacts, out)
    class_tables = copy_per_class_tables(view, artifacts, out)
    sections = [
        build_section(view, d, out, figures, explainer_figures, class_tables)
        for d in view.cfg.datasets
    ]
    used = {out / p for sec in sections for p in sec.figures()}
    used |= {path for files in class_tables.values() for _, path in files}
    prune_figures(out / "figures" / view.slug, used)
    return sections
