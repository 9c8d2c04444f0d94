"""The summary: three or four sentences per matrix · device · dataset, from the data, that
answer what the board is for: the best architecture (or the tie), how far it is from real
data, the most faithful attribution method, and what each costs. Both pages open with them.
"""

from __future__ import annotations

import numpy as np

from ganbench.board.formatting import cost_text, cost_unit, values_text
from ganbench.board.ranks import (
    against_control,
    attribution_evaluators,
    explainer_ranking,
    faithfulness_scores,
)
from ganbench.board.validity import Gate, Ranked, margin
from ganbench.board.view import MatrixView, Row, rows_by_reference, score_columns, seed_values
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score

# the quality score a summary quotes to say how far the best model is from real data, and the
# two-sample test it quotes to say whether its samples can still be told from real ones: the
# first of each list that ranks on the dataset
HEADLINE_DISTANCES = ("fid", "mmd_domain2", "kid", "mmd2", "c2st_jsd")
HEADLINE_TESTS = ("knn_c2st_accuracy", "one_nn_accuracy", "c2st_accuracy")


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
    method (``ranked``: :func:`~ganbench.board.ranks.explainer_ranking`'s result where the
    caller has it), and what each costs."""
    return (
        _quality_lines(view, dataset, gates, q_rank)
        + _explainer_lines(view, dataset, ranked or explainer_ranking(view, dataset))
        + _cost_lines(view, dataset, per_step)
    )


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
    """The best architecture by sample quality (or the tie), and how far it is from real data."""
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
    far = _how_far(view, dataset, gates, best)
    if far:
        lines.append("**How far from real:** " + "; ".join(far) + ".")
    return lines


def _how_far(view: MatrixView, dataset: str, gates: dict[str, Gate], best: str) -> list[str]:
    """How far ``best`` is from real data: on the first headline distance and the first
    headline two-sample test that rank here."""
    trained, untrained, real = rows_by_reference(view, dataset)
    row = next(t for t in trained if t.label == best)
    quoted = {}
    for ev, score in score_columns(view.cfg, view.evaluators_of("quality")):
        gate = gates.get(f"{ev}/{score.name}")
        if gate is not None and gate.ranked:
            quoted[score.name] = (ev, score)
    rows = (row, untrained.get(row.architecture), real)
    far = []
    for names, words_of in ((HEADLINE_DISTANCES, _distance_words), (HEADLINE_TESTS, _test_words)):
        for name in names:
            if name in quoted and (words := words_of(view, dataset, rows, *quoted[name])):
                far.append(words)
                break
    return far


def _distance_words(
    view: MatrixView,
    dataset: str,
    rows: tuple[Row, Row | None, Row | None],
    ev: str,
    score: Score,
) -> str:
    """One distance of a trained row against real data and its own untrained network, and
    the share of that gap it closes; "" where one of the three has no value."""
    row, untrained, real = rows
    v = seed_values(view, dataset, row, ev, score)[0]
    rv = seed_values(view, dataset, real, ev, score)[0]
    uv = seed_values(view, dataset, untrained, ev, score)[0]
    if not (v and rv and uv):
        return ""
    share = margin(float(np.mean(v)), float(np.mean(uv)), float(np.mean(rv)), score.direction)
    return (
        f"{row.label}'s `{score.name}` is {values_text(v, score)[0]} against "
        f"{values_text(rv, score)[0]} for real data and {values_text(uv, score)[0]} "
        f"untrained ({share:.1%} of the way from its untrained network to real data)"
    )


def _test_words(
    view: MatrixView,
    dataset: str,
    rows: tuple[Row, Row | None, Row | None],
    ev: str,
    score: Score,
) -> str:
    """How well one two-sample test tells a trained row's samples from real ones, beside
    real data's own score; "" where either has no value."""
    row, _, real = rows
    v = seed_values(view, dataset, row, ev, score)[0]
    rv = seed_values(view, dataset, real, ev, score)[0]
    if not (v and rv):
        return ""
    ideal = f" (chance {score.ideal:g})" if score.ideal is not None else ""
    return (
        f"`{score.name}` tells its samples from real ones at {values_text(v, score)[0]}, "
        f"where real data scores {values_text(rv, score)[0]}{ideal}"
    )


def _explainer_lines(
    view: MatrixView, dataset: str, ranked: tuple[dict[str, Ranked], int, int]
) -> list[str]:
    """The most faithful attribution method (or the tie), and the best on each criterion."""
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
    trained, _, _ = rows_by_reference(view, dataset)
    per_criterion = [
        words
        for score in faithfulness_scores(evaluators)
        if (words := _criterion_words(view, dataset, trained, evaluators, score))
    ]
    if per_criterion:
        head += ". Best per criterion: " + "; ".join(per_criterion)
    return [head + "."]


def _criterion_words(
    view: MatrixView, dataset: str, trained: list[Row], evaluators: list[str], score: Score
) -> str:
    """The method that beats its random control on ``score`` on the most trained Ds (then by
    median margin), in words; "" where no method was scored on it."""
    best = None
    for ev in evaluators:
        cls = evaluator_registry(ev).get(ev)
        if not any(s.name == score.name for s in cls.scores):
            continue
        beaten, compared, gains = against_control(view, dataset, trained, ev, cls.score(score.name))
        if compared:
            key = (beaten, float(np.median(gains)))
            if best is None or key > best[0]:
                best = (key, ev, beaten, compared)
    if best is None:
        return ""
    if best[2] == 0:
        return f"`{score.name}`: none beats random ({best[3]} Ds)"
    (beaten, gain), ev, _, compared = best
    return (
        f"`{score.name}`: {ev}, above random on {beaten} of {compared} Ds (median "
        f"margin {gain:+.2g})"
    )


def _cheapest_and_dearest(costs: dict[str, float], what: str, per: str) -> str:
    unit = cost_unit("s", per)
    cheap, dear = min(costs, key=costs.get), max(costs, key=costs.get)
    return (
        f"{what} is cheapest {'for' if per == 'step' else 'with'} {cheap} "
        f"({cost_text([costs[cheap]], 's')[0]} {unit}) and dearest "
        f"{'for' if per == 'step' else 'with'} {dear} ({cost_text([costs[dear]], 's')[0]} {unit})"
    )


def _cost_lines(view: MatrixView, dataset: str, per_step: dict[str, float]) -> list[str]:
    """What training costs per step and explaining per image: the cheapest and the dearest."""
    parts = [_cheapest_and_dearest(per_step, "training", "step")] if per_step else []
    costs = {}
    trained, _, _ = rows_by_reference(view, dataset)
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
