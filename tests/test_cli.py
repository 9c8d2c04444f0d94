"""The command line: listings, and bad input answered with one clear line and exit code 2."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganbench.cli import main


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``ganbench ARGS`` in this process (fast); the console script itself is tested once below."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        os.chdir(cwd or old)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_console_script_is_installed_and_reports_errors_on_one_line(tmp_path):
    script = shutil.which("ganbench", path=str(Path(sys.executable).parent))
    assert script, "the ganbench console script is not installed next to this Python"
    out = subprocess.run(
        [script, "run", "nosuchconfig"], capture_output=True, text=True, cwd=tmp_path
    )
    assert_one_line_error(out, "no config 'nosuchconfig'")


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("ganbench: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_list_shows_every_family():
    out = run("list")
    assert out.returncode == 0
    for word in (
        "architectures (",
        "dcgan",
        "datasets (",
        "digits",
        "metrics (",
        "c2st",
        "mmd",
        "explainers (",
    ):
        assert word in out.stdout


def test_list_datasets_shows_size_resolution_and_classes():
    out = run("list", "datasets")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "1438+359 images, 32x32x1, classes 10, masks yes" in lines["digits"]
    assert "8000+2000 images, 32x32x3, classes 3, masks yes, segmenter yes" in lines["shapes"]
    assert "factors shape, colour, x, y, scale, background" in lines["shapes"]
    # local datasets cannot be sized without their files: the listing says what to put where
    for name in ("mnist", "fashion_mnist", "cifar10", "celeba", "lsun_bedroom", "imagefolder"):
        assert f'set root = "..." in [dataset.{name}]' in lines[name], name
    assert "train-images-idx3-ubyte" in lines["mnist"]


def test_show_dataset_writes_a_png_with_masks(tmp_path):
    from PIL import Image

    out = run(
        "show-dataset", "shapes", "--set", "train_size=64", "--set", "test_size=8", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    png = tmp_path / "shapes.png"
    with Image.open(png) as img:
        wide, high = img.size
    assert wide > high  # the image grid plus a mask table (image + 10 concepts) beside it
    out = run("show-dataset", "digits", "--out", str(tmp_path / "d.png"), "--n", "16")
    assert out.returncode == 0 and (tmp_path / "d.png").stat().st_size > 1000


def test_show_dataset_errors(tmp_path):
    assert_one_line_error(run("show-dataset", "shapez", cwd=tmp_path), "did you mean 'shapes'")
    assert_one_line_error(
        run("show-dataset", "mnist", cwd=tmp_path), "no root set", "[dataset.mnist]"
    )
    assert_one_line_error(
        run("show-dataset", "mnist", "--set", f"root={tmp_path}/none", cwd=tmp_path),
        "mnist",
        "none",
    )
    assert_one_line_error(
        run("show-dataset", "shapes", "--set", "colours=3", cwd=tmp_path), "unknown key 'colours'"
    )
    assert_one_line_error(run("show-dataset", "shapes", "--set", "oops", cwd=tmp_path), "KEY=VALUE")


def test_unknown_config_name(tmp_path):
    assert_one_line_error(
        run("run", "nosuchconfig", cwd=tmp_path), "no config 'nosuchconfig'", "smoke"
    )


def test_malformed_toml(tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad\nseeds = [0]\n')
    assert_one_line_error(run("run", "bad.toml", cwd=tmp_path), "bad.toml: malformed TOML")


def test_only_with_an_unknown_architecture(tmp_path):
    assert_one_line_error(
        run("run", "smoke", "--only", "arch=nosuch", "--store", "s.sqlite", cwd=tmp_path),
        "architecture 'nosuch' is not in the matrix 'smoke'",
        "dcgan",
    )
    assert not (tmp_path / "s.sqlite").exists()  # nothing was started


@pytest.mark.parametrize("seeds", ["a,b", "-1"])
def test_bad_seeds_option(tmp_path, seeds):
    assert_one_line_error(run("run", "smoke", "--seeds", seeds, cwd=tmp_path), "--seeds")


def test_missing_plugin_file(tmp_path):
    assert_one_line_error(
        run("run", "smoke", "--plugin", "nope.py", cwd=tmp_path), "plugin", "does not exist"
    )


def test_plugin_that_fails_to_import(tmp_path):
    """Asked to run only the plugin's architecture, there is nothing left to run: one line
    saying why (with other architectures the run goes on: tests/test_plugin_failures.py)."""
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    out = run("run", "smoke", "--plugin", "broken.py", "--architecture", "mygan", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 2  # the warning, then the error
    assert_one_line_error(
        subprocess.CompletedProcess(out.args, 2, out.stdout, out.stderr.splitlines()[1] + "\n"),
        "--architecture 'mygan' is not registered",
        "failed to import: ModuleNotFoundError",
    )


def test_show_without_a_store(tmp_path):
    assert_one_line_error(
        run("show", "--store", "none.sqlite", cwd=tmp_path), "no store at none.sqlite"
    )


def test_leaderboard_with_nothing_to_render(tmp_path):
    assert_one_line_error(
        run("leaderboard", "--store", "none.sqlite", "--out", "lb", cwd=tmp_path),
        "nothing to render",
    )
