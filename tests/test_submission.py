"""The submission path: the example plugin package goes through check -> run -> export ->
leaderboard; bundles that do not match the matrix they claim are refused."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ganbench.board.leaderboard import render_all
from ganbench.board.sources import collect
from ganbench.board.submission import check_submission
from ganbench.board.view import MatrixView
from ganbench.run.bundles import BundleRefused, read_bundle
from ganbench.run.config_load import load_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store
from ganbench.run.trials import trial_key
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ganbench-tinygan"
GANBENCH = [sys.executable, "-m", "ganbench.cli"]


def ganbench(*args: str, plugin_path: Path | None = None, cwd: Path | None = None):
    """The real command in a fresh process; ``plugin_path`` puts the installed example on it."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if plugin_path is not None:
        env["PYTHONPATH"] = str(plugin_path)
    return subprocess.run(
        [*GANBENCH, *args], capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=600
    )


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The maintainers run a tiny matrix (DCGAN); a submitter installs the example package,
    checks it, runs the same matrix for it alone and exports a bundle into the leaderboard."""
    root = tmp_path_factory.mktemp("submission")
    site = root / "site"
    source = root / "src"  # pip builds in the source folder: keep the checkout clean
    shutil.copytree(EXAMPLE, source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    config = root / "tiny.toml"
    config.write_text(TINY.replace("references = []", 'references = ["untrained", "real"]'))
    maintainers = Store(root / "maintainers" / "ganbench.sqlite")
    run_matrix(load_config(str(config)), maintainers, device="cpu", quiet=True)
    maintainers.close()
    board = root / "leaderboard"

    results = {
        "check": ganbench("check", "tinygan", plugin_path=site),
        "run": ganbench(
            "run",
            str(config),
            "--architecture",
            "tinygan",
            "--store",
            str(root / "submitter" / "ganbench.sqlite"),
            "--quiet",
            plugin_path=site,
        ),
        "export": ganbench(
            "export",
            "--store",
            str(root / "submitter" / "ganbench.sqlite"),
            "--architecture",
            "tinygan",
            "--config",
            str(config),
            "--out",
            str(board / "runs"),
            plugin_path=site,
        ),
        # the maintainers render without the submitter's package installed
        "leaderboard": ganbench(
            "leaderboard",
            "--store",
            str(maintainers.path),
            "--out",
            str(board),
            "--config",
            str(config),
        ),
    }
    return root, site, config, board, results


def test_example_plugin_passes_check(flow):
    *_, results = flow
    out = results["check"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout


def test_submitter_runs_only_their_architecture_and_exports_a_bundle(flow):
    _, _, _, board, results = flow
    assert results["run"].returncode == 0, results["run"].stdout + results["run"].stderr
    assert "0 failed" in results["run"].stdout
    assert results["export"].returncode == 0, results["export"].stderr
    bundle = json.loads((board / "runs" / "submitted-tiny-cpu-tinygan.json").read_text())
    assert bundle["origin"] == "submission" and bundle["architecture"] == "tinygan"
    assert bundle["code"]["name"] == "tinygan" and bundle["environment"]["torch"]
    kinds = sorted(r["kind"] for r in bundle["records"])
    assert kinds == ["evaluate"] * 4 + ["train"] * 2  # trained + untrained, each scored twice
    assert {r["labels"]["architecture"] for r in bundle["records"]} == {"tinygan"}


def test_leaderboard_merges_the_bundle_marked_not_reproduced(flow):
    _, _, _, board, results = flow
    assert results["leaderboard"].returncode == 0, results["leaderboard"].stderr
    readme = (board / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| tinygan † "))
    assert "| 1 " in row  # one seed scored
    assert (
        "tinygan †: submitted in `runs/submitted-tiny-cpu-tinygan.json`; not yet reproduced"
        in readme
    )
    assert "| dcgan " in readme  # the maintainers' own rows are still there
    assert "✓ reproduced" in readme and "† not yet reproduced" in readme  # what the marks mean
    html = (board / "index.html").read_text()
    assert 'data-label="tinygan †"' in html and "not reproduced" in html
    csv = pd.read_csv(board / "results.csv")
    sub = csv[csv.architecture == "tinygan"]
    assert set(sub.origin) == {"submitted, not reproduced"} and sub.value.notna().any()
    assert set(csv[csv.architecture == "dcgan"].origin) == {"maintainers"}
    # the maintainers' own bundle does not absorb the submission
    own = json.loads((board / "runs" / "tiny-cpu.json").read_text())
    assert all(r["labels"]["architecture"] != "tinygan" for r in own["records"])


def _maintainers_rerun(site: Path, config: Path, store: Path) -> None:
    """The maintainers run the matrix and the submitted architecture themselves."""
    for args in (
        ["run", str(config), "--store", str(store), "--quiet"],
        ["run", str(config), "--architecture", "tinygan", "--store", str(store), "--quiet"],
    ):
        out = ganbench(*args, plugin_path=site)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def rerun(flow, tmp_path_factory):
    root, site, config, _, _ = flow
    store = tmp_path_factory.mktemp("rerun") / "ganbench.sqlite"
    _maintainers_rerun(site, config, store)
    return store


def _render_with(board: Path, store: Path, config: Path, out_dir: Path, edit=None) -> str:
    (out_dir / "runs").mkdir(parents=True)
    src = board / "runs" / "submitted-tiny-cpu-tinygan.json"
    bundle = json.loads(src.read_text())
    if edit is not None:
        edit(bundle)
    (out_dir / "runs" / src.name).write_text(json.dumps(bundle))
    out = ganbench(
        "leaderboard", "--store", str(store), "--out", str(out_dir), "--config", str(config)
    )
    assert out.returncode == 0, out.stderr
    return (out_dir / "README.md").read_text()


def test_reproduced_when_the_maintainers_run_gives_the_same_numbers(flow, rerun, tmp_path):
    _, _, config, board, _ = flow
    readme = _render_with(board, rerun, config, tmp_path / "lb")
    assert "| tinygan ✓ " in readme and "tinygan †" not in readme
    assert "tinygan ✓: submitted in" in readme
    assert "reproduced: the maintainers ran the same 6 trial keys and all" in readme
    html = (tmp_path / "lb" / "index.html").read_text()
    assert 'data-label="tinygan ✓"' in html and "agree within their tolerances" in html


def test_a_submitted_number_the_maintainers_do_not_get_is_marked_as_differing(
    flow, rerun, tmp_path
):
    """Same keys, other numbers (here, an MMD² edited in the bundle): the row is marked ✗ and
    hovering it names the score and both values."""
    _, _, config, board, _ = flow

    def inflate(bundle):
        for rec in bundle["records"]:
            if rec["kind"] == "evaluate" and rec["config"]["evaluator"]["name"] == "mmd":
                rec["scores"]["mmd2"] = rec["scores"]["mmd2"] * 3 + 1.0

    readme = _render_with(board, rerun, config, tmp_path / "lb", inflate)
    assert "| tinygan ✗ " in readme
    line = next(x for x in readme.splitlines() if x.startswith("- tinygan ✗"))
    assert "differs from the maintainers' run in 2 of 6 trials; largest: mmd mmd2:" in line
    assert "tolerance" in line
    csv = pd.read_csv(tmp_path / "lb" / "results.csv")
    assert set(csv[csv.architecture == "tinygan"].origin) == {"submitted, differs"}


def _refusal(board: Path, config: Path, edit) -> str:
    path = board / "runs" / "submitted-tiny-cpu-tinygan.json"
    bundle = edit(copy.deepcopy(read_bundle(path)))
    with pytest.raises(BundleRefused) as err:
        check_submission(bundle, path, load_config(str(config)))
    return str(err.value)


def _retrain(bundle, steps: int):
    """Claim a different budget, with keys recomputed so that only the config is wrong."""
    for rec in bundle["records"]:
        if rec["kind"] == "train" and rec["config"]["budget"]["steps"]:
            rec["config"]["budget"]["steps"] = steps
            rec["key"] = trial_key(rec["config"])
    return bundle


def test_bundles_that_do_not_match_their_matrix_are_refused(flow):
    _, _, config, board, _ = flow
    assert "40 steps" in _refusal(board, config, lambda b: _retrain(b, 10))

    def bump_evaluator(b):
        for rec in b["records"]:
            if rec["kind"] == "evaluate" and rec["config"]["evaluator"]["name"] == "mmd":
                rec["config"]["evaluator"]["params"]["n"] = 32
                rec["key"] = trial_key(rec["config"])
        return b

    assert "does not match matrix 'tiny'" in _refusal(board, config, bump_evaluator)

    def edit_key(b):
        b["records"][0]["key"] = "0" * 64
        return b

    assert "hash of its config" in _refusal(board, config, edit_key)
    assert "already an architecture" in _refusal(
        board, config, lambda b: b | {"architecture": "dcgan"}
    )

    def other_seed(b):
        for rec in b["records"]:
            rec["config"]["seed"] = 7
            rec["key"] = trial_key(rec["config"])
        return b

    assert "seed 7 is not a seed" in _refusal(board, config, other_seed)


def test_a_refused_bundle_is_reported_and_left_out(flow, tmp_path):
    root, _, config, board, _ = flow
    out_dir = tmp_path / "lb"
    (out_dir / "runs").mkdir(parents=True)
    bundle = _retrain(read_bundle(board / "runs" / "submitted-tiny-cpu-tinygan.json"), 10)
    (out_dir / "runs" / "submitted-tiny-cpu-tinygan.json").write_text(json.dumps(bundle))
    (out_dir / "runs" / "submitted-tiny-cpu-broken.json").write_text("{not json")
    done = render_all(root / "maintainers" / "ganbench.sqlite", out_dir, [str(config)])
    assert any("a train trial of 10 steps" in r for r in done.refused)
    assert any("not valid JSON" in r for r in done.refused)
    readme = (out_dir / "README.md").read_text()
    assert "tinygan" not in readme.split("> Refused:")[0] and "> Refused:" in readme
    out = ganbench(
        "leaderboard",
        "--store",
        str(root / "maintainers" / "ganbench.sqlite"),
        "--out",
        str(out_dir),
        "--config",
        str(config),
    )
    assert out.returncode == 0 and "refused" in out.stderr and "not valid JSON" in out.stderr


def test_views_only_take_bundles_of_their_own_matrix_and_device(flow):
    root, _, config, board, _ = flow
    sources = collect(root / "maintainers" / "ganbench.sqlite", board / "runs")
    cfg = load_config(str(config))
    assert "tinygan" in MatrixView(cfg, "cpu", sources.records, sources.submissions).submitted
    assert not MatrixView(cfg, "cuda", sources.records, sources.submissions).submitted


def test_a_bundle_claiming_to_be_the_maintainers_is_checked_as_a_submission(flow, tmp_path):
    """Issue 30: a file other than the maintainers' own `<matrix>-<device>.json` whose origin
    says "maintainers" is not trusted. Rendered from the bundles alone (no store), its records
    (DCGAN's scores set to 1e-9) replaced the real ones and were written into the maintainers'
    bundle; now it is checked as a submission, refused, and changes nothing."""
    _, _, config, board, _ = flow
    out_dir = tmp_path / "lb"
    shutil.copytree(board, out_dir)
    own_path = out_dir / "runs" / "tiny-cpu.json"
    own = read_bundle(own_path)
    forged = copy.deepcopy(own)
    touched = 0
    for rec in forged["records"]:
        lab = rec["labels"]
        if rec["kind"] == "evaluate" and lab["architecture"] == "dcgan" and rec["scores"]:
            rec["scores"] = {k: 1e-9 for k in rec["scores"]}
            touched += 1
    assert touched and forged["origin"] == "maintainers"
    # one name a submission would have, one that sorts after the maintainers' file (read last,
    # its records won before)
    for name in ("submitted-x.json", "tiny-cpu2.json"):
        (out_dir / "runs" / name).write_text(json.dumps(forged))
    done = render_all(tmp_path / "no-store.sqlite", out_dir, [str(config)])
    csv = pd.read_csv(out_dir / "results.csv")
    assert not (csv.value == 1e-9).any()
    assert read_bundle(own_path)["records"] == own["records"]
    for name in ("submitted-x.json", "tiny-cpu2.json"):
        assert any(name in r and "checked as a submission" in r for r in done.refused)
        assert any(name in r and "names no architecture" in r for r in done.refused)
    readme = (out_dir / "README.md").read_text()
    assert "> Refused:" in readme and "tiny-cpu2.json" in readme


def _nested(depth: int) -> str:
    return '{"schema": 2, "records": [' + "[" * depth + "]" * depth + "]}"


def _first_eval(b: dict) -> dict:
    return next(r for r in b["records"] if r["kind"] == "evaluate" and r["scores"])


def _set_score(value):
    def edit(b):
        rec = _first_eval(b)
        rec["scores"][next(iter(rec["scores"]))] = value
        return b

    return edit


def _set(field: str, value):
    def edit(b):
        _first_eval(b)[field] = value
        return b

    return edit


MALFORMED = {
    # issue 30, item 4: each of these crashed the whole render or ranked a non-number
    "string score": (_set_score("0.1"), "not a number"),
    "null score": (_set_score(None), "not a number"),
    "list score": (_set_score([1]), "not a number"),
    "dict score": (_set_score({"a": 1}), "not a number"),
    "NaN score": (_set_score(float("nan")), "NaN and infinities are refused"),
    "-Infinity score": (_set_score(float("-inf")), "NaN and infinities are refused"),
    "huge finished": (_set("finished", 1e300), "finished must be seconds since the epoch"),
    "string env": (_set("env", "a string"), "env must be an object"),
    "list labels": (_set("labels", [1, 2]), "labels must be an object"),
    # item 5: names that would write figures outside leaderboard/
    "traversing architecture": (
        lambda b: b | {"architecture": "../../x"},
        "is not a valid name",
    ),
    "absolute label": (
        lambda b: {
            **b,
            "records": [
                r | {"labels": r["labels"] | {"architecture": "/tmp/x"}} for r in b["records"]
            ],
        },
        "is not a valid name",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_bundle_is_refused_in_one_line_and_the_rest_renders(flow, tmp_path, case):
    root, _, config, board, _ = flow
    edit, words = MALFORMED[case]
    out_dir = tmp_path / "lb"
    (out_dir / "runs").mkdir(parents=True)
    good = read_bundle(board / "runs" / "submitted-tiny-cpu-tinygan.json")
    (out_dir / "runs" / "submitted-tiny-cpu-bad.json").write_text(
        json.dumps(edit(copy.deepcopy(good)))  # NaN and Infinity are written as JSON allows
    )
    done = render_all(root / "maintainers" / "ganbench.sqlite", out_dir, [str(config)])
    refusal = [r for r in done.refused if "submitted-tiny-cpu-bad.json" in r]
    assert len(refusal) == 1 and words in refusal[0] and "\n" not in refusal[0]
    readme = (out_dir / "README.md").read_text()
    assert "| dcgan " in readme and "nan ± nan" not in readme and "-inf" not in readme
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.is_relative_to(out_dir.resolve()) for p in written)
    assert not (tmp_path.parent / "x").exists()


def test_a_deep_or_huge_bundle_is_refused_before_it_is_parsed_whole(tmp_path, monkeypatch):
    from ganbench.run import bundles

    deep = tmp_path / "submitted-deep.json"
    deep.write_text(_nested(200_000))
    with pytest.raises(BundleRefused, match="nests objects deeper than"):
        read_bundle(deep)
    shallow_but_deep = tmp_path / "submitted-d30.json"
    shallow_but_deep.write_text(_nested(30))
    with pytest.raises(BundleRefused, match="nests objects deeper than 24 levels"):
        read_bundle(shallow_but_deep)
    monkeypatch.setattr(bundles, "MAX_BUNDLE_BYTES", 100)
    big = tmp_path / "submitted-big.json"
    big.write_text(" " * 200 + "{}")
    with pytest.raises(BundleRefused, match="over the 0 MB a bundle may be"):
        read_bundle(big)


@pytest.mark.parametrize("name", ["../../x", "/abs/path", ".hidden", "a/b", "x" * 65])
def test_names_that_are_not_names_are_refused_where_they_enter(name, tmp_path):
    from ganbench.architectures.dcgan import DCGAN
    from ganbench.core.errors import ConfigError
    from ganbench.core.registry import ARCHITECTURES, bad_name

    assert bad_name(name)
    with pytest.raises(ValueError, match="not a valid name|needs a name"):
        ARCHITECTURES.register(name)(type("Odd", (DCGAN,), {}))
    assert name not in ARCHITECTURES._classes
    variant = tmp_path / "variant.toml"
    variant.write_text(
        TINY.replace('architectures = ["dcgan"]', f'architectures = ["dcgan", {json.dumps(name)}]')
        + f'\n[architecture.{json.dumps(name)}]\nvariant_of = "dcgan"\n'
    )
    with pytest.raises(ConfigError, match="not a valid name|must name"):
        load_config(str(variant))
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(TINY.replace('name = "tiny"', f"name = {json.dumps(name)}"))
    with pytest.raises(ConfigError, match="key 'name'"):
        load_config(str(matrix))
