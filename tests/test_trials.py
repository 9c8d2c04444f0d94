from __future__ import annotations

import copy
import hashlib
import subprocess
import sys

from ganbench.config import load_config
from ganbench.trials import canonical_json, expand, trial_key


def test_canonical_json_ignores_key_order():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})


def test_trial_key_is_the_sha256_of_canonical_json():
    # pinned: a change in canonicalisation silently orphans every stored result
    assert trial_key({"b": 1, "a": [1, 2]}) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()


def test_expansion_is_stable_across_processes(tiny_config):
    path = tiny_config()
    keys = [t.key for t in expand(load_config(str(path)), "cpu")]
    code = (
        "from ganbench.config import load_config; from ganbench.trials import expand; "
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


def test_key_changes_with_code_version_and_schema():
    config = {
        "schema": 1,
        "architecture": {"name": "dcgan", "version": "1", "code": "abc", "params": {}},
    }
    for path, value in (("schema", 2), ("version", "2"), ("code", "abd")):
        changed = copy.deepcopy(config)
        if path == "schema":
            changed["schema"] = value
        else:
            changed["architecture"][path] = value
        assert trial_key(changed) != trial_key(config)


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
