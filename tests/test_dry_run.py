"""`ganbench run --dry-run`: every trial with its status and an estimate from recorded trials;
and the time left that the progress line shows during a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganbench.run.config_load import load_config
from ganbench.run.estimate import Eta, history
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store
from ganbench.run.trials import expand
from tests.test_cli import run

REPO = Path(__file__).resolve().parents[1]


def _json(*args: str, cwd=None) -> dict:
    out = run(*args, "--dry-run", "--format", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_dry_run_lists_every_trial_and_creates_no_store(tiny_config, tmp_path):
    config = tiny_config({"references = []": 'references = ["untrained", "real"]'})
    store = tmp_path / "store" / "ganbench.sqlite"
    plan = _json("run", str(config), "--store", str(store), cwd=tmp_path)
    keys = [t.key for t in expand(load_config(str(config)), "cpu")]
    assert [t["key"] for t in plan["trials"]] == keys
    assert {t["status"] for t in plan["trials"]} == {"to run"}
    assert all(t["estimated_s"] > 0 for t in plan["trials"])
    assert plan["totals"]["to_run"] == len(keys) and plan["totals"]["done"] == 0
    assert not store.parent.exists()
    table = run("run", str(config), "--store", str(store), "--dry-run", cwd=tmp_path)
    assert table.returncode == 0
    last = table.stdout.strip().splitlines()[-1]
    assert last.startswith(f"ganbench run tiny --dry-run: {len(keys)} trials: 0 done,")
    assert "estimated" in last and "wall with 1 worker(s) on cpu" in last
    assert keys[0][:12] in table.stdout


def test_after_a_run_the_dry_run_says_done_and_estimates_from_its_records(tiny_config, tmp_path):
    config = tiny_config()
    store = Store(tmp_path / "s.sqlite")
    run_matrix(load_config(str(config)), store, device="cpu", quiet=True, log=lambda s: None)
    plan = _json("run", str(config), "--store", str(store.path), cwd=tmp_path)
    assert {t["status"] for t in plan["trials"]} == {"done"}
    assert plan["totals"]["estimated_wall_s"] == 0
    # twice the steps: the train estimate is the recorded one scaled by steps
    longer = tiny_config({"steps = 40": "steps = 80"}, name="longer.toml")
    plan = _json("run", str(longer), "--store", str(store.path), cwd=tmp_path)
    train = next(t for t in plan["trials"] if t["kind"] == "train")
    recorded = next(r for r in store.records() if r.kind == "train")
    wall = recorded.finished - recorded.started
    assert train["status"] == "to run" and train["estimate_from"] == "same config"
    assert train["estimated_s"] == pytest.approx(2 * wall, rel=1e-3, abs=0.1)


def test_smoke_dry_run_on_an_empty_store_adds_up_to_the_committed_trial_times(tmp_path):
    """The committed board's records are the estimates on a fresh clone: the trials the board
    holds add up to what they took (medians over seeds where a trial's own record is not the
    only one, and across version bumps, which keep their timings). Trials the matrix gained
    since the board was rendered are estimated from their architecture's records, and only an
    architecture the board has never run has none."""
    bundle = json.loads((REPO / "leaderboard" / "runs" / "smoke-cpu.json").read_text())

    def cell(kind, labels):
        return (
            kind,
            labels["architecture"],
            labels["reference"],
            labels["dataset"],
            labels["seed"],
            labels.get("evaluator"),
            labels.get("steps"),
        )

    took = {
        cell(r["kind"], r["labels"]): r["finished"] - r["started"]
        for r in bundle["records"]
        if r.get("started") and r.get("finished") and r["kind"] != "domain"
    }
    plan = _json("run", "smoke", "--store", str(tmp_path / "none.sqlite"), cwd=REPO)
    on_board = [t for t in plan["trials"] if cell(t["kind"], t) in took]
    assert sum(t["estimated_s"] for t in on_board) == pytest.approx(sum(took.values()), rel=0.15)
    ran = {r["labels"]["architecture"] for r in bundle["records"]}
    unknown = {t["architecture"] for t in plan["trials"] if t["estimate_from"] == "no record"}
    assert not unknown & ran, unknown


def test_the_time_left_follows_how_the_done_trials_compared_with_their_estimates():
    eta = Eta({"a": 10.0, "b": 20.0, "c": 30.0})
    assert eta.seconds == 60
    eta.finished("a", 10.0)  # too little done to rescale yet
    assert eta.seconds == 50
    eta.finished("b", 60.0)  # the machine is slower than the records: 70 s for 30 estimated
    assert eta.seconds == pytest.approx(30 * 70 / 30)
    eta.skipped("c")
    assert eta.seconds == 0


def test_the_progress_line_shows_trials_done_left_and_time_to_go(tiny_config, tmp_path, capsys):
    config = load_config(str(tiny_config()))
    store = Store(tmp_path / "s.sqlite")
    costs = history([])
    run_matrix(config, store, device="cpu", quiet=False, log=lambda s: None, costs=costs)
    err = capsys.readouterr().err
    assert "trials done" in err and "to run, about" in err and "to go" in err
