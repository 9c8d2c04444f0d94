"""One distribution, folders mapped with package-dir: it works as a wheel and as an editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = [
    "ganbench",
    "ganbench.core",
    "ganbench.run",
    "ganbench.board",
    "ganbench.cli",
    "ganbench.metrics",
    "ganbench.architectures",
    "ganbench.datasets",
    "ganbench.explainers",
]


def test_editable_install_maps_each_package_to_its_folder():
    import importlib

    expected = {
        "ganbench": "bench",
        "ganbench.core": "bench/core",
        "ganbench.run": "bench/run",
        "ganbench.board": "bench/board",
        "ganbench.cli": "bench/cli",
        "ganbench.metrics": "metrics",
        "ganbench.architectures": "architectures",
        "ganbench.datasets": "datasets",
        "ganbench.explainers": "explainers",
    }
    for module, folder in expected.items():
        path = Path(importlib.import_module(module).__file__).resolve()
        assert path == REPO / folder / "__init__.py"


def test_wheel_contains_every_package_and_the_configs_and_imports_alone(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("ganbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "ganbench/__init__.py",
        "ganbench/core/registry.py",
        "ganbench/run/runner.py",
        "ganbench/board/templates/leaderboard.html.j2",
        "ganbench/cli/templates/architecture.py.tmpl",
        "ganbench/metrics/c2st.py",
        "ganbench/architectures/dcgan.py",
        "ganbench/datasets/digits.py",
        "ganbench/explainers/__init__.py",
        "ganbench/configs/smoke.toml",
    ):
        assert required in names, required
    assert not any(n.startswith(("tests/", "leaderboard/", "bench/")) for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import ganbench, ganbench.metrics, ganbench.architectures, ganbench.datasets, ganbench.explainers\n"
        "from ganbench.run.config_load import load_config\n"
        "from ganbench.core.registry import list_architectures, list_metrics\n"
        "print(ganbench.__file__)\n"
        "print(load_config('smoke').name, list_architectures(), list_metrics())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    # the installed wheel alone loads the smoke config and registers every built-in
    assert out[1].startswith("smoke [") and "'c2st'" in out[1]
    for name in ("dcgan", "sagan", "infogan", "stylegan", "cocogan", "ifgan"):
        assert f"'{name}'" in out[1], name
