"""``leaderboard/index.html``: one static page (Jinja2), working offline, from the same sections
as the markdown: sortable tables, a dataset selector, the legend, a figure gallery per
architecture, and where every result came from."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ganbench import __version__


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ganbench.board", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sortkey"] = lambda v: "" if v is None else f"{float(v):.10g}"
    env.filters["inline"] = inline_markdown
    return env


def inline_markdown(text: str) -> Markup:
    """The markdown sentences the leaderboard shares with README.md, as HTML: escaped, with
    `code` and **bold** rendered."""
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    return Markup(html)


def write_page(
    path: Path,
    sections: list,
    date: str,
    *,
    legends: dict,
    trial_words: dict,
    budget_lines: dict,
    contention: dict,
    reproduction_note: str,
) -> Path:
    """Render the page for ``sections`` (built by ganbench.board.section) to ``path``; the
    other arguments are each view's sentences (by view slug) that README.md shows too."""
    html = (
        _environment()
        .get_template("leaderboard.html.j2")
        .render(
            sections=sections,
            legends=legends,
            trial_words=trial_words,
            budget_lines=budget_lines,
            contention=contention,
            date=date,
            version=__version__,
            table_titles=TABLE_TITLES,
            reproduction_note=reproduction_note,
        )
    )
    path.write_text(html, encoding="utf-8")
    return path


TABLE_TITLES = {
    "quality": (
        "Sample quality",
        "Mean ± std over seeds (p-values: combined over seeds by Fisher's method; hover for "
        "each seed's); best architecture in bold; rows in italics are controls "
        "(the same network untrained, real images in place of samples), not contenders. "
        "Hover a cell for the per-seed values, an n/a for its reason, a failure for its error.",
    ),
    "ranking": (
        "Ranking",
        "Each architecture on its margin over its own untrained control (for quality: the "
        "share of the untrained-to-real-data gap it closes), as the mean win rate over the "
        "columns that passed their validity gate (HELM-style), with a 95% bootstrap interval "
        "over seeds; ranks whose intervals overlap are ties. Explainability ranks what the "
        "generators learned (dissection, directions, intrinsic explanations), apart from "
        "the attribution methods. Cost is shown, never ranked.",
    ),
    "validity": (
        "Metric validity",
        "Per score: how far real data lies from the untrained controls in seed spreads (or how "
        "often it beats its control), Kendall τ between training steps and the score along "
        "one training's checkpoints (+1: better at every checkpoint), its mean rank agreement "
        "with the other scores, and whether it ranks. A score that an untrained network ties "
        "or beats is shown greyed and left out of every ranking.",
    ),
    "explainer_ranking": (
        "Which attribution method is most faithful",
        "Methods explaining the trained discriminators' logits, each on its margin over its "
        "own random control; mean win rate over D × score columns with a 95% bootstrap "
        "interval. Sanity (cascading randomisation) and cost are shown, not ranked.",
    ),
    "cost": ("Cost", "Training cost per architecture, mean ± std over seeds."),
    "explainer_cost": (
        "Explainer cost",
        "Milliseconds of the attribution pass per explained image, per explainer, mean ± std "
        "over seeds.",
    ),
    "explainability": (
        "Explainability",
        "Explainers any architecture can be scored by, one table each, every score beside its "
        "control where it declares one (hover: the control's value).",
    ),
    "winners": (
        "Which explainer wins",
        "Per architecture and score that several explainers share: the best explainer, its "
        "value and its random control; hover for every explainer's value.",
    ),
    "intrinsic": (
        "Intrinsic explanations",
        "What an architecture explains about itself by design; architectures an explainer "
        "does not apply to are left out.",
    ),
}
