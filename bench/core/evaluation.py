"""What an evaluation returns, and how the harness writes it: an evaluator computes, the
harness (``ganbench.run``) checks the scores against their declarations and writes the
reports and figures into the trial's artifact folder, and the board shows the figures each
evaluator declares (``Evaluator.figures``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError

FIGURE_DPI = 100


@dataclass
class Evaluation:
    """``evaluate``'s result: the declared ``scores``; ``reports``, file stem -> an object
    written as ``STEM.json``; ``figures``, file stem -> a matplotlib figure written as
    ``STEM.png`` (at :data:`FIGURE_DPI`, then closed), each matching a declared pattern."""

    scores: dict[str, float]
    reports: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def as_evaluation(result: Evaluation | dict[str, float]) -> Evaluation:
    """An :class:`Evaluation` from what ``evaluate`` returned (a plain dict is scores only)."""
    return result if isinstance(result, Evaluation) else Evaluation(dict(result))


def figure_patterns(evaluator: type) -> tuple[str, ...]:
    """The PNG file names ``evaluator`` declares (shell patterns, ``{name}`` its name)."""
    return tuple(p.format(name=evaluator.name) for p in evaluator.figures)


def checked_scores(evaluator: type, scores: dict[str, Any]) -> dict[str, float]:
    """``scores`` as floats when they are exactly the declared ones, each finite."""
    declared = {s.name for s in evaluator.scores}
    if set(scores) != declared:
        raise GanbenchError(
            f"evaluator {evaluator.name} returned scores {sorted(scores)} but declares {sorted(declared)}"
        )
    bad = [k for k, v in scores.items() if not math.isfinite(float(v))]
    if bad:
        raise GanbenchError(f"evaluator {evaluator.name} produced a non-finite {bad[0]}")
    return {k: float(v) for k, v in scores.items()}


def write_outputs(evaluator: type, result: Evaluation, folder: Path) -> list[Path]:
    """Write ``result``'s reports and figures into ``folder``; a figure whose file name no
    declared pattern matches is an error (the board would never show it)."""
    patterns = figure_patterns(evaluator)
    for stem in result.figures:
        if not any(fnmatchcase(f"{stem}.png", p) for p in patterns):
            raise GanbenchError(
                f"evaluator {evaluator.name} returned figure {stem}.png, which none of its "
                f"declared figures {list(patterns)} matches: declare it in `figures`"
            )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, report in result.reports.items():
        path = folder / f"{stem}.json"
        path.write_text(json.dumps(report, indent=1))
        written.append(path)
    if result.figures:
        # pyplot only where an evaluation has figures: importing it takes half a second
        import matplotlib.pyplot as plt

        for stem, fig in result.figures.items():
            path = folder / f"{stem}.png"
            fig.savefig(path, dpi=FIGURE_DPI)
            plt.close(fig)
            written.append(path)
    return written


def evaluate_and_write(evaluator: Any, ctx: Any) -> dict[str, float]:
    """Run ``evaluator`` on ``ctx`` as a trial does: its scores checked against the
    declarations, its reports and figures written into ``ctx.artifact_dir``; returns the
    scores."""
    result = as_evaluation(evaluator.evaluate(ctx))
    scores = checked_scores(type(evaluator), result.scores)
    write_outputs(type(evaluator), result, ctx.artifact_dir)
    return scores
