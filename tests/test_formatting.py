"""Numbers printed as what they are: p-values combined (Fisher), never averaged; "< 0.001"
for p-values only; small numbers as small; counts as integers; costs in their header's unit."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ganbench.board.formatting import cost_text, cost_unit, fisher, values_text
from ganbench.core.scores import Score

P = Score("mmd_p_value", "none", "a p-value")
X = Score("mmd2", "lower", "a distance")
N = Score("interpretable_units", "higher", "a count", integer=True)


def test_fisher_is_uniform_under_the_null_and_small_when_every_seed_rejects():
    rng = np.random.default_rng(0)
    combined = np.array([fisher(list(rng.uniform(size=3))) for _ in range(4000)])
    # under the null the combined p-value is uniform: its type-I error at 0.05 is 0.05
    assert abs((combined < 0.05).mean() - 0.05) < 0.012
    assert stats.kstest(combined, "uniform").pvalue > 0.01
    # two seeds that each reject at 0.01 reject more strongly together
    assert fisher([0.01, 0.01]) < 0.01
    # a seed that does not reject pulls the combination up; a mean would hide which
    assert fisher([0.002, 0.9]) > 0.002


def test_p_values_are_combined_not_averaged():
    text, sort = values_text([0.002, 0.002], P)
    assert text == "< 0.001" and sort < 0.001  # the mean, 0.002, would understate the evidence
    text, _ = values_text([0.015, 0.5], P)
    assert "±" not in text and text == f"{fisher([0.015, 0.5]):.3f}"


def test_only_p_values_print_as_below_a_thousandth():
    assert values_text([0.0004], X)[0] == "4.00e-04"
    assert values_text([0.0004, 0.0002], X)[0] == "3.00e-04 ± 1.4e-04"
    assert "<" not in values_text([0.0004, 0.0002], X)[0]
    assert values_text([-0.00001, 0.00001], X)[0] == "0.00e+00 ± 1.4e-05"
    assert values_text([-1e-9], X)[0] == "-1.00e-09"  # tiny, not "-0.000"
    assert values_text([-0.0000001, 0.0], X)[0] == "-5.00e-08 ± 7.1e-08"


def test_counts_are_integers():
    assert values_text([41.0], N)[0] == "41"
    assert values_text([41.0, 41.0], N)[0] == "41"
    assert values_text([40.0, 41.0], N)[0] == "40.5 ± 0.7"


def test_costs_print_in_the_unit_their_header_names():
    assert cost_unit("s", "step") == "ms/step" and cost_unit("MiB") == "MiB"
    text, mean = cost_text([0.035, 0.037], "s")
    assert text == "36.0 ± 1.41" and abs(mean - 0.036) < 1e-12
    assert cost_text([120.0], "s", convert=False)[0] == "120"
    assert cost_text([], "s") == ("–", None)
