"""Carrying stored records over a change of key layout (schema 1 -> 2), on fingerprint evidence.

Schema 1 keys held a hash of each component's source file and named an evaluation's domain
network by the key of the trial that trained it; schema 2 keys hold declared versions and
the pinned weights' sha256 (:mod:`ganbench.run.keys`). A schema-1 record is re-keyed and kept
only where

* its config, with the source hashes dropped, is a trial of today's matrix (its component
  versions are today's: a version is in the key);
* it reads no domain network (the networks each machine trained are replaced by the pinned
  ones, so every number read through them is re-measured);
* it scored no trained model (checkpoints are not committed: an evaluation that must be
  redone needs its model retrained, which on another machine is another draw of training,
  so every evaluation of that model is redone with it); untrained controls are rebuilt
  bit for bit from their seed, and the real-data reference has no model;
* it was run from a clean checkout (a ``-dirty`` commit's code cannot be checked out), and
  the golden fingerprints of its components, computed with the code of its commit, equal
  today's recorded ones: the code that made it computes what today's code computes.

Everything else is left to ``ganbench run``, which re-runs exactly the trials the store lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.run import fingerprint_inputs, fingerprint_values
from ganbench.run import fingerprints as fp
from ganbench.run.config import MatrixConfig
from ganbench.run.keys import SCHEMA_VERSION, trial_key
from ganbench.run.store import Store
from ganbench.run.trials import Trial, expand

REPO = Path(__file__).resolve().parents[2]

# Where modules sat before the package was split into stages (core, run, board, cli): today's
# fingerprint modules, run on an older commit's code, find them under their new names.
_FLAT = {
    "core": "errors params scores registry evaluator plots checkpoint plugins",
    "run": "keys config trials store runner estimate execute ray_executor fingerprints migrate conformance",
    "board": "leaderboard html figures formatting submission reproduce validity",
}
OLD_NAMES = {
    f"ganbench.{stage}.{m}": f"ganbench.{m}" for stage, ms in _FLAT.items() for m in ms.split()
}
# the modules today's fingerprint code imports that older commits kept elsewhere, newest first
# (the run stage's split moved them out of run/execute.py, which had been execute.py)
EARLIER_HOMES = {
    "ganbench.run.numerics": ("ganbench.run.execute", "ganbench.execute"),
    "ganbench.run.train_loop": ("ganbench.run.execute", "ganbench.execute"),
}
# today's fingerprint code, laid over an older commit's tree at today's paths
FINGERPRINT_MODULES = (fingerprint_inputs, fingerprint_values, fp)

_RUN = """
import json, sys
from pathlib import Path
import importlib
import ganbench
for new, old in {aliases!r}.items():  # an older commit's flat layout under today's names
    importlib.import_module(new.rsplit(".", 1)[0])  # today's stage: an empty package there
    sys.modules[new] = importlib.import_module(old)
assert ganbench.__file__.startswith({pkg!r}), ganbench.__file__  # the code meant, not another
import ganbench.datasets.domain as domain
domain.PINNED_DIR = Path({weights!r})
_load = domain.load_domain_network
domain.load_domain_network = lambda path, device="cpu", sha256=None: _load(path, device)
fp = importlib.import_module("ganbench.run.fingerprints")
values = importlib.import_module("ganbench.run.fingerprint_values")
values.FLOAT64 = False  # as trials compute: older code assumed float32 in places
out = {{}}
for family, name in {components!r}:
    try:
        out[family + ":" + name] = fp.on_one_thread(
            lambda: values.plain_values(values.compute_values(family, name))
        )
    except Exception as exc:  # a component the commit lacks, or an API it did not have
        out[family + ":" + name] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps(out))
"""


def _run(pkg: Path, components: list[tuple[str, str]], cwd: str, aliases: dict[str, str]) -> dict:
    """The fingerprint runs of ``components`` by the package at ``pkg`` in a fresh process,
    with ``aliases`` (today's module name -> the module of that tree) in place."""
    code = _RUN.format(
        pkg=str(pkg),
        aliases=aliases,
        weights=str(fp.PINNED_DIR),
        components=[list(c) for c in components],
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if pkg != REPO / "bench":
        env["PYTHONPATH"] = str(pkg.parent)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd
    )
    if out.returncode != 0:
        raise GanbenchError(f"fingerprints of {pkg} failed: {out.stderr.strip().splitlines()[-1:]}")
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    return {tuple(k.split(":", 1)): v for k, v in raw.items()}


def _lay_today_over(bench: Path) -> dict[str, str]:
    """Write today's fingerprint modules into an older commit's ``bench/`` at today's paths;
    returns the aliases its own modules need (none, unless it has the flat layout of before
    the stages: then each stage is an empty package and its modules keep their old names)."""
    aliases: dict[str, str] = {}
    if not (bench / "core").is_dir():  # the flat layout
        for stage in _FLAT:
            (bench / stage).mkdir(exist_ok=True)
            (bench / stage / "__init__.py").touch()
        if not (bench / "keys.py").exists():
            shutil.copy(REPO / "bench" / "run" / "keys.py", bench / "keys.py")
        today = {m.__name__ for m in FINGERPRINT_MODULES}
        aliases = {new: old for new, old in OLD_NAMES.items() if new not in today}
    for new, homes in EARLIER_HOMES.items():
        if not _module_file(bench, new).is_file():
            home = next((h for h in homes if _module_file(bench, h).is_file()), None)
            if home is not None:
                aliases[new] = home
    for module in FINGERPRINT_MODULES:
        source = Path(module.__file__)
        shutil.copy(source, bench / "run" / source.name)
    return aliases


def _module_file(bench: Path, module: str) -> Path:
    """Where ``ganbench.a.b`` lies in a tree whose package folder is ``bench``."""
    return bench.joinpath(*module.split(".")[1:]).with_suffix(".py")


def fingerprints_at(commit: str, components: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Today's fingerprint runs of ``components`` on the code of ``commit`` (git archive of
    the repository), in float32, with today's pinned domain networks: values or an error."""
    with tempfile.TemporaryDirectory() as tmp:
        tree, pkg = Path(tmp) / "tree", Path(tmp) / "pkg"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        bench = tree / "bench"
        for sub in ("architectures", "datasets", "explainers", "metrics"):
            if (tree / sub).is_dir():
                (bench / sub).symlink_to(tree / sub)
        aliases = _lay_today_over(bench)
        pkg.mkdir()
        (pkg / "ganbench").symlink_to(bench)
        return _run(pkg / "ganbench", components, tmp, aliases)


def evidence_at(commit: str, components: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Per component: "" when the code of ``commit`` computes what today's code computes (the
    fingerprint runs of both, in float32, on this machine), else why not."""
    old = fingerprints_at(commit, components)
    with tempfile.TemporaryDirectory() as tmp:
        now = _run(REPO / "bench", components, tmp, {})
    out = {}
    for comp in components:
        got, today = old.get(comp), now.get(comp)
        if isinstance(today, str) or today is None:
            out[comp] = f"today's code did not run it: {today}"
        elif isinstance(got, str) or got is None:
            out[comp] = f"did not run at {commit[:12]}: {got}"
        else:
            # today's fingerprints leave costs out; older code reported them as scores
            got = {k: v for k, v in got.items() if k in today}
            moved = fp.compare(today, got)
            out[comp] = f"numbers differ: {moved[0]}" if moved else ""
    return out


def _strip(part: Any) -> Any:
    if isinstance(part, dict):
        return {k: _strip(v) for k, v in part.items() if k != "code"}
    return part


def schema2_config(config: dict[str, Any], by_key: dict[str, dict] | None = None) -> dict:
    """A schema-1 config with the source hashes dropped and the schema raised; an
    evaluation's ``source.train`` becomes the schema-2 key of that train record (from
    ``by_key``, the schema-1 records by key)."""
    new = _strip(config) | {"schema": SCHEMA_VERSION}
    train = (new.get("source") or {}).get("train")
    if train is not None:
        if by_key is None or train not in by_key:
            raise GanbenchError(f"evaluation of train trial {train[:12]}, which is not recorded")
        new["source"] = {"train": trial_key(schema2_config(by_key[train]["config"]))}
    return new


@dataclass
class Plan:
    """What happens to each schema-1 record."""

    kept: list[tuple[dict[str, Any], Trial]] = field(default_factory=list)  # (record, today's)
    rerun: Counter = field(default_factory=Counter)  # reason -> records

    def line(self) -> str:
        total = len(self.kept) + sum(self.rerun.values())
        why = "; ".join(f"{n} {reason}" for reason, n in self.rerun.most_common())
        return f"{total} schema-1 records: {len(self.kept)} kept (re-keyed), re-run: {why}"


def _components(config: dict[str, Any], train: dict[str, Any] | None) -> list[tuple[str, str]]:
    comps = [("harness", "schema")]
    if train is not None:
        comps.append(("architecture", train["config"]["architecture"]["name"]))
        comps.append(("dataset", train["config"]["dataset"]["name"]))
    else:
        comps.append(("dataset", config["source"]["real"]["dataset"]["name"]))
    name = config["evaluator"]["name"]
    comps.append(("metric" if name in fp.METRICS else "explainer", name))
    return comps


def plan(
    records: list[dict[str, Any]], cfg: MatrixConfig, device_type: str, evidence=evidence_at
) -> Plan:
    """Decide, record by record, what is kept (see the module's docstring)."""
    today = {t.key: t for t in expand(cfg, device_type)}
    by_key = {r["key"]: r for r in records}
    out = Plan()
    candidates: list[tuple[dict, Trial, list[tuple[str, str]], str]] = []
    for rec in records:
        config = rec["config"]
        if rec["kind"] == "domain":
            out.rerun["domain networks replaced by the pinned ones"] += 1
            continue
        if rec["status"] == "n/a" and not rec.get("env"):
            out.rerun["n/a by design (recorded again without running)"] += 1
            continue
        if rec["kind"] == "train":
            new = schema2_config(config)
            why = (
                "untrained controls (rebuilt from their seed)"
                if not new["budget"]["steps"]
                else "trained models (checkpoints not kept)"
            )
            out.rerun[f"train trials of {why}"] += 1
            continue
        if "domain" in config:
            out.rerun["evaluations through a retrained domain network"] += 1
            continue
        train = by_key.get(config["source"].get("train")) if "train" in config["source"] else None
        if train is not None and train["config"]["budget"]["steps"]:
            out.rerun["evaluations of trained models (retrained)"] += 1
            continue
        trial = today.get(trial_key(schema2_config(config, by_key)))
        if trial is None:
            out.rerun["evaluations no longer in the matrix"] += 1
            continue
        commit = ((rec.get("env") or {}).get("git_commit")) or ""
        if not commit or commit.endswith("-dirty"):
            out.rerun["evaluations run from a modified work tree (code unknown)"] += 1
            continue
        candidates.append((rec, trial, _components(config, train), commit))
    needed: dict[str, set[tuple[str, str]]] = {}
    for _, _, comps, commit in candidates:
        needed.setdefault(commit, set()).update(comps)
    verdicts = {c: evidence(c, sorted(comps)) for c, comps in needed.items()}
    for rec, trial, comps, commit in candidates:
        failed = [c for c in comps if verdicts[commit].get(c)]
        if failed:
            out.rerun[
                f"evaluations whose fingerprints moved since their commit ({failed[0][0]} {failed[0][1]})"
            ] += 1
        else:
            out.kept.append((rec, trial))
    return out


def migrated_record(rec: dict[str, Any], trial: Trial) -> dict[str, Any]:
    """The record under its schema-2 key; provenance notes the key it had."""
    env = dict(rec.get("env") or {})
    env["migrated_from"] = rec["key"]
    return {**rec, "key": trial.key, "config": trial.config, "labels": trial.labels, "env": env}


def apply(plan_: Plan, store: Store) -> int:
    """Write the kept records into ``store`` (over pending rows; never over finished ones)."""
    written = 0
    for rec, trial in plan_.kept:
        existing = store.get(trial.key)
        if existing is not None and existing.status in ("finished", "n/a"):
            continue
        store.put(migrated_record(rec, trial))
        written += 1
    return written
