"""Validity gates and rankings with uncertainty, on data whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from ganbench.board.ranks import architecture_ranking, column_gates
from ganbench.board.score_tables import score_table
from ganbench.board.validity import (
    Entry,
    RankColumn,
    control_gate,
    margin,
    monotonicity,
    quality_gate,
    rank,
    rank_agreement,
)
from ganbench.board.view import MatrixView
from ganbench.core.evaluator import Evaluator
from ganbench.core.registry import METRICS
from ganbench.core.scores import Score
from ganbench.run.config_load import load_config
from tests.conftest import TINY, registered

LOWER = Score("x", "lower", "a distance")
HIGHER = Score("y", "higher", "an accuracy")


def test_quality_gate_needs_real_data_beyond_every_untrained_control():
    real = [0.50, 0.52]
    assert quality_gate(real, {"a": [1.0, 0.98], "b": [0.9, 0.92]}, "lower").ranked
    # an untrained control as good as real data: the score rewards something else
    gate = quality_gate(real, {"a": [1.0, 0.98], "b": [0.51, 0.50]}, "lower")
    assert not gate.ranked and "untrained b" in gate.reason
    # better, but within the seeds' spread
    assert not quality_gate([0.5, 0.7], {"a": [0.8, 0.6]}, "lower").ranked
    # the declared direction matters: real data must be *better*
    assert not quality_gate(real, {"a": [1.0, 0.98]}, "higher").ranked
    assert not quality_gate([], {"a": [1.0]}, "lower").ranked
    assert not quality_gate(real, {"a": [1.0]}, "none").ranked


def test_control_gate_counts_contenders_that_beat_their_control():
    pairs = {"a": ([0.9, 0.8], [0.5, 0.5]), "b": ([0.5, 0.51], [0.5, 0.5])}
    gate = control_gate(pairs, "higher", "its random control")
    assert gate.ranked and (gate.passed, gate.of) == (1, 2)
    pairs["c"] = ([0.4], [0.5])
    assert not control_gate(pairs, "higher", "its random control").ranked


def test_margin_is_the_share_of_the_gap_to_real_data_closed():
    # lower is better: untrained 10, real 0; a trained 2 closes 80% of the gap
    assert margin(2.0, 10.0, 0.0, "lower") == pytest.approx(0.8)
    assert margin(0.9, 0.5, 1.0, "higher") == pytest.approx(0.8)
    # no better than its untrained self: 0; worse: negative
    assert margin(10.0, 10.0, 0.0, "lower") == 0.0
    assert margin(12.0, 10.0, 0.0, "lower") < 0


def test_rank_orders_clear_differences_and_ties_indistinguishable_ones():
    rng = np.random.default_rng(0)
    cols = []
    for i in range(4):
        entries = {
            name: Entry(list(mu + 0.01 * rng.standard_normal(3)), [10.0, 10.0, 10.0], [0.0] * 3)
            for name, mu in (("best", 1.0), ("mid", 5.0), ("twin", 5.0), ("worst", 9.0))
        }
        cols.append(RankColumn(f"c{i}", LOWER, entries))
    ranked = rank(cols)
    assert ranked["best"].rank_words() == "1" and not ranked["best"].tied_with
    assert ranked["worst"].rank == 4 and not ranked["worst"].tied_with
    # "mid" and "twin" are the same model: their intervals overlap, a tie
    assert "twin" in ranked["mid"].tied_with and "mid" in ranked["twin"].tied_with
    assert ranked["best"].rate_low <= ranked["best"].rate <= ranked["best"].rate_high


def test_rank_uses_the_margin_over_each_contenders_own_control():
    # "a" has the better raw value, but its untrained self was already there: no margin
    entries = {
        "a": Entry([3.0, 3.0], [3.2, 3.2], [0.0, 0.0]),
        "b": Entry([4.0, 4.0], [10.0, 10.0], [0.0, 0.0]),
    }
    ranked = rank([RankColumn("c", LOWER, entries)])
    assert ranked["b"].rank == 1 and ranked["a"].rank == 2


def test_monotonicity_and_rank_agreement():
    better = {"a": [(0, 1.0), (500, 0.8), (1000, 0.7), (1500, 0.6)]}
    assert monotonicity(better, "lower") == (1.0, 1, 1)
    assert monotonicity(better, "higher")[0] == -1.0
    orders = {"u": {"a": 1, "b": 2, "c": 3}, "v": {"a": 0.9, "b": 0.8, "c": 0.7}}
    tau = rank_agreement(orders, {"u": "lower", "v": "higher"})
    assert tau["u"]["v"] == pytest.approx(1.0)


class _Planted(Evaluator):
    """A metric with planted values: ``honest`` puts real data first and untrained nets last;
    ``collapse`` is won by the untrained nets (as PPL was)."""

    version = "1"
    scores = (Score("honest", "lower", "a distance to real data"), Score("collapse", "lower", "x"))

    def evaluate(self, ctx):  # not run: the records are planted
        raise NotImplementedError


VALUES = {  # (architecture, reference) -> (honest, collapse)
    ("dcgan", "trained"): (2.0, 5.0),
    ("dcgan", "untrained"): (10.0, 0.01),
    ("dcgan-wide", "trained"): (6.0, 4.0),
    ("dcgan-wide", "untrained"): (10.0, 0.02),
    ("real data", "real"): (0.0, 3.0),
}


def test_a_column_won_by_an_untrained_control_is_greyed_and_left_out_of_the_ranking(tmp_path):
    text = (
        TINY.replace("seeds = [0]", "seeds = [0, 1]")
        .replace('metrics = ["c2st", "mmd"]', 'metrics = ["planted"]')
        .replace('architectures = ["dcgan"]', 'architectures = ["dcgan", "dcgan-wide"]')
        .replace("references = []", 'references = ["untrained", "real"]')
    )
    text = text.split("[metric.c2st]")[0]
    text += '\n[architecture.dcgan-wide]\nvariant_of = "dcgan"\nwidth = 16\n'
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    with registered(METRICS, "planted", _Planted):
        cfg = load_config(str(path))
        view = MatrixView(cfg, "cpu", {})
        for t in view.own:
            lab = t.labels
            if t.kind != "evaluate":
                continue
            honest, collapse = VALUES[(lab["architecture"], lab["reference"])]
            jitter = 0.01 * lab["seed"]
            view.records[t.key] = {
                "key": t.key,
                "kind": "evaluate",
                "status": "finished",
                "scores": {"honest": honest + jitter, "collapse": collapse + jitter},
            }
        gates = column_gates(view, "digits")
        assert gates["planted/honest"].ranked
        assert not gates["planted/collapse"].ranked
        assert "untrained" in gates["planted/collapse"].reason
        ranking = architecture_ranking(view, "digits", ("quality",), gates)
        # dcgan closes 80% of its gap to real data, dcgan-wide 40%: the collapse column,
        # where dcgan-wide "wins", does not count
        assert ranking["dcgan"].rank == 1 and ranking["dcgan-wide"].rank == 2
        table = score_table(view, "digits", ["planted"], gates, ranking)
        header = [c.header for c in table.columns]
        assert "collapse ↓ (unranked)" in header and "honest ↓" in header
        col = header.index("collapse ↓ (unranked)")
        assert not any(row.cells[col].bold for row in table.rows)
        assert all(row.cells[col].unranked for row in table.rows)


def test_checkpoints_are_partial_trainings_of_the_first_seed_scored_by_quality_metrics(tmp_path):
    text = (
        TINY.replace("seeds = [0]", "seeds = [0, 1]")
        .replace(
            "references = []", 'references = ["untrained", "real"]\ncheckpoints = [10, 20, 99]'
        )
        .split("[metric.c2st]")[0]
        .replace('metrics = ["c2st", "mmd"]', 'metrics = ["planted"]\nexplainers = ["seams"]')
    )
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    with registered(METRICS, "planted", _Planted):
        cfg = load_config(str(path))
        view = MatrixView(cfg, "cpu", {})
        partial = [t for t in view.own if t.labels["reference"] == "checkpoint"]
        trains = sorted(t.labels["steps"] for t in partial if t.kind == "train")
        # the first seed only, and only step counts below the budget (40)
        assert trains == [10, 20]
        assert {t.labels["seed"] for t in partial} == {0}
        assert {t.config["budget"]["steps"] for t in partial if t.kind == "train"} == {10, 20}
        assert {t.labels["evaluator"] for t in partial if t.kind == "evaluate"} == {"planted"}
        # planted: "honest" improves along the checkpoints, "collapse" gets worse
        steps = {"untrained": 0, "trained": 40}
        for t in view.own:
            lab = t.labels
            if t.kind != "evaluate" or lab["evaluator"] != "planted":
                continue
            s = lab.get("steps", steps.get(lab["reference"]))
            honest = 0.0 if s is None else 10.0 - s / 5
            view.records[t.key] = {
                "key": t.key,
                "kind": "evaluate",
                "status": "finished",
                "scores": {"honest": honest + 0.01 * lab["seed"], "collapse": (s or 0) / 10},
            }
        assert [r.reference for r in view.rows("digits")] == ["trained", "untrained", "real"]
        from ganbench.board.rank_tables import validity_table

        table = validity_table(view, "digits", column_gates(view, "digits"))
        cells = {row.label: row.cells for row in table.rows}
        assert cells["planted/honest"][3].text.startswith("+1.00 (1 of 1 monotone)")
        assert cells["planted/collapse"][3].text.startswith("-1.00 (0 of 1 monotone)")
