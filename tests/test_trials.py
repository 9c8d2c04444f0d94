from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

from ganbench.core.checkpoint import load_tensors, tensors_sha256
from ganbench.run.config_load import load_config
from ganbench.run.trials import canonical_json, expand, trial_key


def test_canonical_json_ignores_key_order():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})


def test_trial_key_is_the_sha256_of_canonical_json():
    # pinned: a change in canonicalisation silently orphans every stored result
    assert trial_key({"b": 1, "a": [1, 2]}) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()


def test_expansion_is_stable_across_processes(tiny_config):
    path = tiny_config()
    keys = [t.key for t in expand(load_config(str(path)), "cpu")]
    code = (
        "from ganbench.run.config_load import load_config; from ganbench.run.trials import expand; "
        f"print(','.join(t.key for t in expand(load_config({str(path)!r}), 'cpu')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.split(",") == keys


def test_expansion_orders_train_trials_first_and_links_evaluations(tiny_config):
    trials = expand(
        load_config(str(tiny_config({"references = []": 'references = ["untrained", "real"]'}))),
        "cpu",
    )
    kinds = [t.kind for t in trials]
    assert kinds == sorted(kinds, key=lambda k: k != "train")
    train_keys = {t.key for t in trials if t.kind == "train"}
    assert len(train_keys) == 2  # trained + untrained
    evals = [t for t in trials if t.kind == "evaluate"]
    assert len(evals) == 3 * 2  # (trained, untrained, real) x (c2st, mmd)
    assert all(t.depends_on in train_keys for t in evals if t.labels["reference"] != "real")
    assert all(t.depends_on is None for t in evals if t.labels["reference"] == "real")


def test_key_changes_with_everything_that_defines_the_result(tiny_config):
    base = expand(load_config(str(tiny_config())), "cpu")[0]
    variants = {
        "seed": tiny_config({"seeds = [0]": "seeds = [1]"}, name="a.toml"),
        "param": tiny_config({"width = 8": "width = 16"}, name="b.toml"),
        "steps": tiny_config({"steps = 40": "steps = 41"}, name="c.toml"),
        "batch": tiny_config({"batch_size = 32": "batch_size = 16"}, name="d.toml"),
        "dataset param": tiny_config(extra="[dataset.digits]\nsplit_seed = 3\n", name="e.toml"),
    }
    keys = {base.key}
    for what, path in variants.items():
        key = expand(load_config(str(path)), "cpu")[0].key
        assert key not in keys, f"changing the {what} did not change the train key"
        keys.add(key)
    assert expand(load_config(str(tiny_config())), "cuda")[0].key != base.key  # device type


def test_key_changes_with_version_and_schema():
    config = {"schema": 2, "architecture": {"name": "dcgan", "version": "1", "params": {}}}
    for path, value in (("schema", 3), ("version", "2")):
        changed = copy.deepcopy(config)
        if path == "schema":
            changed["schema"] = value
        else:
            changed["architecture"][path] = value
        assert trial_key(changed) != trial_key(config)


def test_keys_read_no_source_file(monkeypatch):
    """A comment or a refactor keeps every key: expanding the smoke matrix never hashes a
    source file (those hashes are provenance, written into each record's env)."""
    import ganbench.run.keys

    def refuse(cls):
        raise AssertionError(f"a key read the source of {cls.__qualname__}")

    monkeypatch.setattr(ganbench.run.keys, "source_file_hash", refuse)
    trials = expand(load_config("smoke"), "cpu")
    for t in trials:
        for part in ("architecture", "dataset", "evaluator"):
            if part in t.config:
                assert set(t.config[part]) == {"name", "version", "params"}, t.config[part]


def test_evaluation_key_depends_on_its_train_trial(tiny_config):
    a = [t for t in expand(load_config(str(tiny_config())), "cpu") if t.kind == "evaluate"][0]
    b = [
        t
        for t in expand(
            load_config(str(tiny_config({"steps = 40": "steps = 50"}, name="x.toml"))), "cpu"
        )
        if t.kind == "evaluate"
    ][0]
    assert a.config["evaluator"] == b.config["evaluator"] and a.key != b.key


def test_records_keep_the_source_files_and_git_commit_as_provenance(tiny_config, tmp_path):
    from ganbench.run.runner import run_matrix
    from ganbench.run.store import Store

    store = Store(tmp_path / "s.sqlite")
    run_matrix(load_config(str(tiny_config())), store, device="cpu", quiet=True, log=print)
    dcgan = Path(__file__).resolve().parents[1] / "architectures" / "dcgan.py"
    digest = hashlib.sha256(dcgan.read_bytes()).hexdigest()[:16]
    for rec in store.records():
        assert rec.env["code"]["architectures/dcgan.py"] == digest
        assert "git_commit" in rec.env
    train = next(r for r in store.records() if r.kind == "train")
    weights = store.artifact_dir(train.key) / "model.safetensors"
    assert train.outputs["weights_sha256"] == tensors_sha256(load_tensors(weights))
    mmd = next(r for r in store.records() if r.labels.get("evaluator") == "mmd")
    assert "metrics/mmd.py" in mmd.env["code"]


def test_weights_hash_is_the_tensors_not_the_file(tmp_path):
    """safetensors writes metadata in a random order per process: the hash must not see it."""
    import torch

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.float16)}
    hashes = set()
    for i in range(4):
        code = (
            "import sys, torch\n"
            "from ganbench.core.checkpoint import save_tensors\n"
            "t = {'b': torch.arange(6.0).reshape(2, 3), 'a': torch.ones(4, dtype=torch.float16)}\n"
            "save_tensors(t, sys.argv[1], {'architecture': 'x', 'version': '1', 'z': 'q'})\n"
        )
        path = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        hashes.add(tensors_sha256(load_tensors(path)))
    assert hashes == {tensors_sha256(tensors)}
    changed = dict(tensors, b=tensors["b"] + 1e-6)
    assert tensors_sha256(changed) != tensors_sha256(tensors)
    assert tensors_sha256({"c": tensors["b"], "a": tensors["a"]}) != tensors_sha256(tensors)
