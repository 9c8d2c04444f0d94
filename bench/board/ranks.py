"""Which score columns may rank, and the rankings over them, from a view's per-seed values
(the statistics themselves are in :mod:`ganbench.board.validity`).

- :func:`column_gates`: the validity gate of every directional primary column;
- :func:`architecture_ranking`: the trained architectures ranked over the columns of some
  kinds (sample quality; what the generators learned) that passed their gates;
- :func:`explainer_ranking`: the attribution methods ranked against each other per trained
  discriminator, each on its margin over its own random control.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ganbench.board.validity import (
    Entry,
    Gate,
    RankColumn,
    Ranked,
    combine,
    control_gate,
    margin,
    quality_gate,
    rank,
    separation,
)
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

# sanity checks of an attribution method, shown beside its rank and never in it: a random
# map "passes" cascading randomisation by being noise, so beating that control is not
# faithfulness (the issue-32 summary quoted "lime beats its random control on 1 of 7 Ds")
SANITY_SCORES = ("randomisation_rho",)


def column_gates(view: MatrixView, dataset: str) -> dict[str, Gate]:
    """The validity gate of every directional primary column on ``dataset``
    (``ganbench.board.validity``): quality scores must put real data beyond every untrained
    control; attribution scores must beat their random control; scores of what a generator
    learned must put trained networks above their untrained selves (and beat their random
    control where they declare one). Costs never rank."""
    rows = rows_by_reference(view, dataset)
    gates: dict[str, Gate] = {}
    for ev, score in score_columns(view.cfg):
        if score.direction == "none":
            continue
        if score.cost:
            gates[f"{ev}/{score.name}"] = Gate(False, "a cost: shown, never ranked")
        else:
            gates[f"{ev}/{score.name}"] = _gate(view, dataset, rows, ev, score)
    return gates


def _gate(
    view: MatrixView,
    dataset: str,
    rows: tuple[list[Row], dict[str, Row], Row | None],
    ev: str,
    score: Score,
) -> Gate:
    """The gate of one directional column that is not a cost (see :func:`column_gates`);
    ``rows``: the dataset's rows by reference (:func:`rows_by_reference`)."""
    trained, untrained, real = rows
    values = {r.architecture: seed_values(view, dataset, r, ev, score) for r in trained}
    base = {
        a: seed_values(view, dataset, r, ev, score)[0] for a, r in untrained.items() if a in values
    }
    kind = column_kind(ev)
    if kind == "quality":
        real_values = seed_values(view, dataset, real, ev, score)[0]
        return quality_gate(real_values, {a: v for a, v in base.items() if v}, score.direction)
    with_control = {a: (v, c) for a, (v, c) in values.items()}
    if kind == "discriminator":
        if not score.control:
            return Gate(False, "declares no random control to validate it against")
        return control_gate(with_control, score.direction, "its random control")
    learned = control_gate(
        {a: (values[a][0], b) for a, b in base.items()},
        score.direction,
        "the same network untrained",
    )
    if score.control:
        return combine(control_gate(with_control, score.direction, "its random control"), learned)
    return learned


def architecture_ranking(
    view: MatrixView, dataset: str, kinds: tuple[str, ...], gates: dict[str, Gate]
) -> dict[str, Ranked]:
    """The trained architectures ranked over the columns of ``kinds`` that passed their
    gates, each on its margin over its own untrained control (for quality: the share of the
    untrained-to-real gap it closes), with bootstrap rank intervals."""
    trained, untrained, real = rows_by_reference(view, dataset)
    columns = []
    for ev, score in score_columns(view.cfg):
        col = f"{ev}/{score.name}"
        if column_kind(ev) not in kinds or not (gates.get(col) and gates[col].ranked):
            continue
        real_values = seed_values(view, dataset, real, ev, score)[0]
        entries = {}
        for row in trained:
            values = seed_values(view, dataset, row, ev, score)[0]
            base = seed_values(view, dataset, untrained.get(row.architecture), ev, score)[0]
            if values and base:
                entries[row.label] = Entry(values, base, real_values)
        if len(entries) >= 2:
            columns.append(RankColumn(col, score, entries))
    return rank(columns)


def attribution_evaluators(view: MatrixView) -> list[str]:
    """The matrix's attribution methods: the explainers of D's logit."""
    return [ev for ev in view.cfg.explainers if column_kind(ev) == "discriminator"]


def shared_scores(evaluators: list[str]) -> list[Score]:
    """Directional primary scores that two or more of ``evaluators`` declare under one name
    (``insertion_minus_deletion`` of every attribution explainer): the columns explainers
    compete on."""
    seen: dict[str, list[Score]] = defaultdict(list)
    for ev in evaluators:
        for s in evaluator_registry(ev).get(ev).scores:
            if s.primary and s.direction != "none":
                seen[s.name].append(s)
    return [v[0] for v in seen.values() if len(v) >= 2]


def faithfulness_scores(evaluators: list[str]) -> list[Score]:
    """The shared scores attribution methods are ranked on: those with a random control,
    neither a cost nor a sanity check."""
    return [
        s
        for s in shared_scores(evaluators)
        if not (s.cost or not s.control or s.name in SANITY_SCORES)
    ]


def explainer_ranking(view: MatrixView, dataset: str) -> tuple[dict[str, Ranked], int, int]:
    """The attribution methods ranked against each other: one column per trained D and
    shared faithfulness score, each method on its margin over its own random control; a
    column counts only where at least one method beats its control there beyond the seeds'
    spread. Returns the ranking, the columns used and the columns offered."""
    evaluators = attribution_evaluators(view)
    trained, _, _ = rows_by_reference(view, dataset)
    columns, offered = [], 0
    for score in faithfulness_scores(evaluators):
        for row in trained:
            entries = {}
            for ev in evaluators:
                cls = evaluator_registry(ev).get(ev)
                if any(s.name == score.name for s in cls.scores):
                    values, controls = seed_values(view, dataset, row, ev, cls.score(score.name))
                    if values and controls:
                        entries[ev] = Entry(values, controls)
            if len(entries) < 2:
                continue
            offered += 1
            if any(separation(e.values, e.baseline, score.direction).ok for e in entries.values()):
                columns.append(RankColumn(f"{row.label}/{score.name}", score, entries))
    return rank(columns), len(columns), offered


def against_control(
    view: MatrixView, dataset: str, rows: list[Row], ev: str, score: Score
) -> tuple[int, int, list[float]]:
    """Over ``rows`` (trained Ds): on how many ``ev`` beats its random control on ``score``
    beyond the seeds' spread, on how many both were scored, and its margin on each."""
    beaten, compared, gains = 0, 0, []
    for row in rows:
        v, c = seed_values(view, dataset, row, ev, score)
        if v and c:
            compared += 1
            beaten += separation(v, c, score.direction).ok
            gains.append(margin(float(np.mean(v)), float(np.mean(c)), None, score.direction))
    return beaten, compared, gains
