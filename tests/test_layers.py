"""The layering contract (pyproject.toml, [tool.importlinter]), checked by import-linter on the
package as it installs: cli above board above run above the four families, all above core;
the families independent of each other; no import cycle among the modules of any package;
private modules imported only from within their package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def installed_tree(dest: Path) -> Path:
    """The ``ganbench`` package as a wheel lays it out (pyproject's package-dir mapping:
    ``ganbench.metrics`` is ``metrics/``, ...), copied under ``dest``; import-linter reads a
    package from one folder tree."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        target = dest.joinpath(*package.split("."))
        shutil.copytree(
            REPO / folder,
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "weights", "*.toml"),
        )
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", str(REPO / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_the_layering_contract_holds(tmp_path):
    out = lint_imports(installed_tree(tmp_path))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        (
            "explainers/seams.py",
            "from ganbench.run import runner",
            "explainers is not allowed to import ganbench.run",
        ),
        (
            "metrics/mmd.py",
            "from ganbench.explainers import seams",
            "metrics is not allowed to import ganbench.explainers",
        ),
        (
            "run/store.py",
            "from ganbench.board import figures",
            "run is not allowed to import ganbench.board",
        ),
        (
            "board/figures.py",
            "from ganbench.board import leaderboard",
            "No cycles are allowed in ganbench.board",
        ),
    ],
)
def test_the_contract_catches_an_import_that_breaks_it(tmp_path, module, line, broken):
    """One import against the layers, the families' independence or acyclicity, added to a
    copy of the package: the check fails and names it."""
    tree = installed_tree(tmp_path)
    victim = tree / "ganbench" / module
    victim.write_text(victim.read_text() + f"\n{line}  # noqa\n")
    out = lint_imports(tree)
    assert out.returncode != 0
    assert broken in out.stdout, out.stdout[-3000:]
