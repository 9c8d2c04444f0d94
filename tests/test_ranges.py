"""Declared parameter ranges: checked when a matrix is read and when an evaluator is made, so a
parameter no trial can run with fails before anything runs, in one line naming the table."""

from __future__ import annotations

import math

import pytest

from ganbench.core.errors import ConfigError
from ganbench.core.evaluator import Evaluator
from ganbench.core.params import Range, check_ranges
from ganbench.core.registry import create_explainer
from ganbench.run.config_load import parse_config


@pytest.mark.parametrize(
    "allowed, inside, outside, words",
    [
        (Range(low=2), [2, 3, 1e9], [1, -1, math.nan], ">= 2"),
        (
            Range(0.0, 1.0, low_open=True, high_open=True),
            [0.5, 1e-9],
            [0.0, 1.0, math.nan],
            "in (0, 1)",
        ),
        (Range(0.0, 1.0, low_open=True), [1.0, 0.25], [0.0, 1.5], "in (0, 1]"),
        (Range(high=3), [3, -5], [4], "<= 3"),
        (
            Range(choices=("blur", "zero")),
            ["blur", "zero"],
            ["mean", None],
            "one of 'blur', 'zero'",
        ),
        (Range(low=0, allow_none=True), [None, 0], [-1], ">= 0"),
        (Range(), [math.nan, -1, "x"], [None], "anything"),
    ],
)
def test_a_range_allows_exactly_its_values(allowed, inside, outside, words):
    assert allowed.words() == words
    assert all(allowed.allows(v) for v in inside), inside
    assert not any(allowed.allows(v) for v in outside), outside


def test_the_first_value_outside_its_range_is_named():
    with pytest.raises(ValueError, match=r"^n must be >= 2, got 1$"):
        check_ranges({"k": Range(low=0), "n": Range(low=2)}, {"k": 0, "n": 1})
    with pytest.raises(ValueError, match="not one of its parameters"):
        check_ranges({"m": Range(low=0)}, {"n": 1})


def test_an_evaluator_refuses_a_parameter_outside_its_range_when_made():
    with pytest.raises(
        ConfigError, match=r"^evaluator 'dissection': alpha must be in \(0, 1\), got 1\.0$"
    ):
        create_explainer("dissection", alpha=1.0)
    assert create_explainer("dissection", alpha=0.5).params["alpha"] == 0.5


def test_rules_across_parameters_extend_check_params():
    class Window(Evaluator):
        name = "window"
        defaults = {"lo": 0, "hi": 1}
        ranges = {"lo": Range(low=0)}

        @classmethod
        def check_params(cls, params):
            super().check_params(params)
            if params["lo"] > params["hi"]:
                raise ValueError(f"needs lo <= hi, got {params['lo']} > {params['hi']}")

    Window(lo=1, hi=2)
    with pytest.raises(ConfigError, match="lo must be >= 0"):
        Window(lo=-1)
    with pytest.raises(ConfigError, match=r"evaluator 'window': needs lo <= hi, got 3 > 2"):
        Window(lo=3, hi=2)


def test_a_matrix_with_a_parameter_outside_its_range_fails_when_read():
    data = {
        "name": "bad",
        "seeds": [0],
        "architectures": ["dcgan"],
        "datasets": ["digits"],
        "explainers": ["dissection"],
        "explainer": {"dissection": {"alpha": 1.5}},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, "bad.toml")
    assert str(err.value) == "bad.toml: [explainer.dissection]: alpha must be in (0, 1), got 1.5"
