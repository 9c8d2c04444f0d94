"""Golden fingerprints: every built-in component computes the numbers recorded beside its
version, so a stored result is what the code under its key gives (ganbench.run.fingerprints)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ganbench.core.registry import create_dataset, create_metric
from ganbench.datasets.domain import PINNED_DIR
from ganbench.run import fingerprints as fp
from ganbench.run.fingerprint_values import domain_values
from tests.conftest import eval_context

pytestmark = pytest.mark.usefixtures("one_thread")

COMPONENTS = fp.all_components()


@pytest.mark.parametrize("family,name", COMPONENTS, ids=[f"{f}:{n}" for f, n in COMPONENTS])
def test_numbers_are_those_recorded_at_the_declared_versions(family, name):
    verdict = fp.check(family, name)
    assert verdict.ok, verdict.message


def test_every_registered_family_member_has_a_fingerprint():
    recorded = {(p.parent.name, p.stem) for p in fp.DEFAULT_DIR.glob("*/*.json")}
    assert set(COMPONENTS) == recorded, (
        "record the missing ones with `ganbench fingerprint --record`"
    )
    families = {f for f, _ in COMPONENTS}
    assert families == set(fp.FAMILIES)


@pytest.mark.parametrize("dataset", sorted(p.name for p in PINNED_DIR.iterdir() if p.is_dir()))
@pytest.mark.parametrize("threads", [1, 2])
def test_pinned_network_features_match_the_reference_with_1_and_2_threads(dataset, threads):
    stored = fp.load("domain", dataset)["values"]["features"]
    torch.set_num_threads(threads)
    features = domain_values(dataset)["features"].flatten().tolist()
    assert len(features) == len(stored) == 16 * 64
    worst = max(abs(a - b) for a, b in zip(features, stored, strict=True))
    assert worst <= 1e-5, f"{dataset}: features differ by {worst:.2e} with {threads} threads"


def test_real_data_fid_on_digits_agrees_between_1_and_2_threads(tmp_path):
    """The real-data reference's FID (held-out digits against training digits) in the pinned
    network's features: the thread count must not move it (it did when each machine trained
    its own network)."""
    digits = create_dataset("digits")
    scores = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        metric = create_metric("fidelity", n=1000, kid_subset_size=200, kid_subsets=20)
        ctx = eval_context(None, digits, tmp_path / str(threads))
        ctx.domain_dir, ctx._cache = PINNED_DIR / "digits", {}
        scores.append(metric.evaluate(ctx))
    one, two = scores
    assert one["fidelity_n"] == 359
    for name in ("fid", "kid", "precision", "recall"):
        rel = abs(one[name] - two[name]) / max(abs(one[name]), 1e-12)
        assert rel <= 1e-4, f"{name}: {one[name]} with 1 thread, {two[name]} with 2"


def test_a_moved_number_under_an_unchanged_version_names_the_component_and_the_fix(tmp_path):
    now = fp.compute("metric", "mmd")
    doctored = json.loads(json.dumps(now.as_json()))
    doctored["values"]["mmd2"] *= 1.01
    path = fp.path_of("metric", "mmd", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doctored))
    verdict = fp.check("metric", "mmd", tmp_path, now)
    assert not verdict.ok
    assert "metric mmd computes different numbers at the same version '2'" in verdict.message
    assert "mmd2:" in verdict.message and "metrics/mmd.py" in verdict.message
    assert "ganbench fingerprint --record metric:mmd" in verdict.message


def test_a_bumped_version_asks_for_a_re_recording_not_another_bump(tmp_path):
    now = fp.compute("architecture", "dcgan")
    old = now.as_json() | {"version": "0"}
    path = fp.path_of("architecture", "dcgan", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    verdict = fp.check("architecture", "dcgan", tmp_path, now)
    assert not verdict.ok and "re-record" in verdict.message and "Bump" not in verdict.message
    # re-recording is allowed now that the version moved, and then the check passes
    fp.record("architecture", "dcgan", tmp_path)
    assert fp.check("architecture", "dcgan", tmp_path, now).ok


def test_recording_refuses_numbers_that_moved_without_a_version_bump(tmp_path):
    now = fp.compute("dataset", "digits")
    doctored = now.as_json()
    doctored["values"]["train_images_sum"] *= 1.01
    path = fp.path_of("dataset", "digits", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doctored))
    with pytest.raises(Exception, match="numbers moved .* but no version did"):
        fp.record("dataset", "digits", tmp_path)
    fp.record("dataset", "digits", tmp_path, force=True)  # say, a new torch
    assert fp.check("dataset", "digits", tmp_path).ok


def test_an_edit_to_a_shared_helper_is_caught_in_the_metrics_that_import_it():
    """A real edit to metrics/_stats.py (used through ``from ._stats import ...``, which
    re-keys nothing): the fingerprints of the metrics computing through it fail."""
    helper = Path(fp.__file__).parents[2] / "metrics" / "_stats.py"
    source = helper.read_text()
    old = "    n_used = min(len(real), len(fake))\n    return real[:n_used], fake[:n_used]"
    assert old in source, "the edit below no longer applies: pick another line of _stats.py"
    code = textwrap.dedent(
        f"""
        import sys, types
        import ganbench.metrics
        path = {str(helper)!r}
        source = open(path).read().replace({old!r}, {old.replace("n_used]", "n_used - 1]")!r})
        module = types.ModuleType("ganbench.metrics._stats")
        module.__file__ = path
        sys.modules["ganbench.metrics._stats"] = module
        exec(compile(source, path, "exec"), module.__dict__)
        from ganbench.run import fingerprints as fp
        for name in ("mmd", "knn_c2st", "c2st"):
            verdict = fp.on_one_thread(lambda: fp.check("metric", name))
            print(name, verdict.ok, verdict.message)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {line.split(" ", 1)[0]: line for line in out.stdout.splitlines()}
    for moved in ("mmd", "knn_c2st"):  # both read paired_features
        assert f"{moved} False metric {moved} computes different numbers" in lines[moved]
        assert "Bump `version`" in lines[moved]
    assert lines["c2st"].startswith("c2st True")  # reads paired_samples, which is unchanged
