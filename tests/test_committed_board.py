"""The committed board holds what its issues promised, read from the files themselves: each
matrix's records come from one clean commit, the smoke run was uncontended, every trained
smoke model beats its untrained control on the headline scores, and the figures stay small."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

BOARD = Path(__file__).resolve().parents[1] / "leaderboard"
BUNDLES = sorted((BOARD / "runs").glob("*.json"))
# score -> where it lives: lower is better for each
HEADLINE = {
    "knn_c2st": "knn_c2st_accuracy",
    "mmd_domain": "mmd_domain2",
    "fidelity": "fid",
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_each_matrix_is_from_one_clean_commit(path):
    commits = {env.get("git_commit") for env in load(path)["envs"]}
    assert len(commits) == 1, commits
    (commit,) = commits
    assert commit and not commit.endswith("-dirty"), commit


def test_the_smoke_run_was_uncontended():
    """cpu_share: the share of its threads' time a training got (the board marks < 0.75)."""
    shares = {
        r["key"][:12]: r["timings"].get("cpu_share")
        for r in load(BOARD / "runs" / "smoke-cpu.json")["records"]
        if r["kind"] == "train"
        and r["status"] == "finished"
        and r["labels"]["reference"] != "untrained"
    }
    assert shares and all(s is not None and s >= 0.75 for s in shares.values()), shares


def test_every_trained_smoke_model_beats_its_untrained_control():
    scores: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in load(BOARD / "runs" / "smoke-cpu.json")["records"]:
        lab = r["labels"]
        if (
            r["kind"] != "evaluate"
            or r["status"] != "finished"
            or lab.get("evaluator") not in HEADLINE
        ):
            continue
        name = HEADLINE[lab["evaluator"]]
        cell = (lab["architecture"], lab["dataset"], lab["seed"], lab["reference"])
        scores[cell][name] = r["scores"][name]
    trained = [c for c in scores if c[3] == "trained"]
    assert {c[1] for c in trained} == {"digits", "shapes"}
    worse = [
        (c[:3], name, scores[c][name], scores[c[:3] + ("untrained",)][name])
        for c in trained
        for name in HEADLINE.values()
        if not scores[c][name] < scores[c[:3] + ("untrained",)][name]
    ]
    assert not worse, worse


def test_figures_stay_small():
    smoke = sum(
        p.stat().st_size for p in (BOARD / "figures" / "smoke-cpu").rglob("*") if p.is_file()
    )
    assert smoke <= 8 * 2**20, smoke  # issue 32: the smoke board's figures in 8 MB
    biggest = max((p for p in BOARD.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    assert biggest.stat().st_size <= 2 * 2**20, biggest  # no file over ~2 MB is committed


def test_the_board_re_renders_from_its_bundles_byte_identical_apart_from_its_date(tmp_path):
    """``ganbench leaderboard`` with no store renders the committed bundles: every file comes
    out as committed except for the rendering date (a refactor of the board moves no byte)."""
    import re
    import shutil

    from ganbench.board.leaderboard import render_all

    out = tmp_path / "leaderboard"
    shutil.copytree(BOARD, out)
    render_all(tmp_path / "no-store.sqlite", out)

    def dated(path: Path) -> bytes:
        return re.sub(rb"on \d{4}-\d{2}-\d{2}", b"on DATE", path.read_bytes())

    committed = sorted(p.relative_to(BOARD) for p in BOARD.rglob("*") if p.is_file())
    rendered = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert rendered == committed
    moved = [str(p) for p in committed if dated(BOARD / p) != dated(out / p)]
    assert not moved, f"re-rendering changed {moved}"
