"""``ganbench new-evaluator NAME``: the template it writes registers, keeps the evaluator
contract on every built-in architecture it applies to, runs in a matrix, separates a trained
model from its untrained control and from real data, and reaches the board."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ganbench.core.plugins import load_plugin_file
from ganbench.core.registry import METRICS, list_architectures
from ganbench.run.store import Store
from tests.test_evaluator_contract import REAL, assert_declared, evaluate_case

GANBENCH = [sys.executable, "-m", "ganbench.cli"]
MATRIX = """
name = "colour"
seeds = [0]
architectures = ["dcgan"]
datasets = ["digits"]
metrics = ["colour-gap"]
references = ["untrained", "real"]

[train]
steps = 150
batch_size = 32
log_every = 50
grid_size = 16

[architecture.dcgan]
width = 8
latent_dim = 16
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("new-evaluator")
    out = folder / "colour_gap.py"
    done = subprocess.run(
        [*GANBENCH, "new-evaluator", "colour-gap", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    load_plugin_file(out)
    try:
        yield out
    finally:
        METRICS._classes.pop("colour-gap", None)


def test_the_template_is_ruff_clean(template):
    ruff = [str(Path(sys.executable).with_name("ruff"))]
    for args in (["check", str(template)], ["format", "--check", str(template)]):
        done = subprocess.run([*ruff, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("source", [*list_architectures(), REAL])
def test_the_template_keeps_the_evaluator_contract(template, source, tmp_path):
    cls = METRICS.get("colour-gap")
    scores = evaluate_case("colour-gap", source, "digits", {"n": 64}, tmp_path / "f", tmp_path)
    assert_declared(cls, scores, f"{source}/digits")


def test_the_template_runs_in_a_matrix_and_reaches_the_board(template, tmp_path):
    config = tmp_path / "colour.toml"
    config.write_text(MATRIX)
    store = tmp_path / "s.sqlite"
    run = subprocess.run(
        [
            *GANBENCH,
            "run",
            str(config),
            "--store",
            str(store),
            "--plugin",
            str(template),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    gap = {
        r.labels["reference"]: r.scores["colour_gap_gap"]
        for r in Store(store).records(kind="evaluate")
    }
    assert gap["real"] < gap["trained"] < gap["untrained"], gap
    board = subprocess.run(
        [
            *GANBENCH,
            "leaderboard",
            "--config",
            str(config),
            "--plugin",
            str(template),
            "--store",
            str(store),
            "--out",
            str(tmp_path / "board"),
        ],
        capture_output=True,
        text=True,
    )
    assert board.returncode == 0, board.stderr
    readme = (tmp_path / "board" / "README.md").read_text()
    assert "colour_gap_gap" in readme


def test_a_name_that_is_not_a_plain_word_is_refused_in_one_line(tmp_path):
    done = subprocess.run(
        [*GANBENCH, "new-evaluator", "Bad Name", "--out", str(tmp_path / "x.py")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "lower-case letters" in done.stderr
