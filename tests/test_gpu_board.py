"""scripts/gpu-board.sh, as the GPU machine runs it, on the CPU with a tiny matrix: two
commands, the second taking up what the first left, each within a time limit; what comes back
is three files with no model checkpoint, and the second command's store holds the whole matrix."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-board.sh"


def board(tmp_path: Path, out: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OUT": str(tmp_path / out),
        "PYTHON": sys.executable,  # ganbench, captum and torch_fidelity import: no install
        "GPU_BOARD_WORK": str(tmp_path / f"work-{out}"),  # a fresh machine per command
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def statuses(store: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(store)
    out: dict[str, list[str]] = {}
    for kind, status, attempts in db.execute("SELECT kind, status, attempts FROM trials"):
        out.setdefault(kind, []).append(f"{status}:{attempts}")
    db.close()
    return out


def test_two_commands_carry_the_store_and_figures_and_finish_the_matrix(tiny_config, tmp_path):
    config = tiny_config(
        {'architectures = ["dcgan"]': 'architectures = ["dcgan", "dcgan-b"]'},
        '[architecture.dcgan-b]\nvariant_of = "dcgan"\nwidth = 8\nlatent_dim = 8\n',
    )
    first = board(
        tmp_path, "out1", "--config", str(config), "--limit", "300", "--", "--only", "arch=dcgan"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    out1 = tmp_path / "out1"
    assert sorted(p.name for p in out1.iterdir()) == [
        "artifacts.tar.gz",
        "ganbench.sqlite",
        "gpu-board.log",
    ]
    with tarfile.open(out1 / "artifacts.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("samples.png") for n in names)
    assert not any(n.endswith("model.safetensors") for n in names)  # checkpoints stay behind
    assert statuses(out1 / "ganbench.sqlite") == {
        "train": ["finished:1"],
        "evaluate": ["finished:1"] * 2,
    }

    second = board(tmp_path, "out2", "--config", str(config), "--carry", str(out1))
    assert second.returncode == 0, second.stdout + second.stderr
    done = statuses(tmp_path / "out2" / "ganbench.sqlite")
    # dcgan's trials were taken up, not rerun (attempt 1); dcgan-b's ran here
    assert (
        sorted(done["train"]) == ["finished:1"] * 2
        and sorted(done["evaluate"]) == ["finished:1"] * 4
    )
    with tarfile.open(tmp_path / "out2" / "artifacts.tar.gz") as tar:
        assert sum(n.endswith("samples.png") for n in tar.getnames()) == 2
    log = (tmp_path / "out2" / "gpu-board.log").read_text()
    assert "took up" in log and "0 to run" in log


@pytest.mark.slow  # 30 s; make test-all
def test_a_time_limit_stops_the_run_and_still_leaves_the_files(tiny_config, tmp_path):
    config = tiny_config({"steps = 40": "steps = 100000"})
    out = board(tmp_path, "out", "--config", str(config), "--limit", "20")
    assert out.returncode == 124, out.stdout + out.stderr
    assert (tmp_path / "out" / "ganbench.sqlite").exists()
    assert (tmp_path / "out" / "artifacts.tar.gz").exists()
    assert "run ended with status 124" in (tmp_path / "out" / "gpu-board.log").read_text()


def test_mistakes_are_one_line_each(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    no_out = subprocess.run(
        ["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert no_out.returncode == 2 and no_out.stderr.strip().count("\n") == 0
    assert "set OUT" in no_out.stderr
    env["OUT"] = str(tmp_path / "o")
    env["GPU_BOARD_WORK"] = str(tmp_path / "w")
    bad = subprocess.run(
        ["bash", str(SCRIPT), "--carry", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "holds no ganbench.sqlite" in bad.stdout
