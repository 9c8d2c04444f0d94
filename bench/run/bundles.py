"""Result bundles: a matrix's records as one JSON file (``ganbench export``, the committed
``leaderboard/*.json``), their format, its limits, and reading records back from a bundle or
a store. The submission gate that checks a bundle against its matrix is
``ganbench.board.submission``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import bad_name
from ganbench.run.config import MatrixConfig
from ganbench.run.store import Store
from ganbench.run.trials import SCHEMA_VERSION, domain_weights_of, expand

BUNDLE_SCHEMA = 2
# schema 2 may store each trial environment once, in a top-level ``envs`` list that records
# point into (``compact_envs``); schema 1 bundles, with an ``env`` dict in every record, still read
READABLE_BUNDLE_SCHEMAS = (1, 2)
RECORD_FIELDS = (
    "key",
    "kind",
    "status",
    "config",
    "labels",
    "scores",
    "timings",
    "env",
    "outputs",
    "error",
    "started",
    "finished",
)


class BundleRefused(GanbenchError):
    """A submitted bundle does not match the matrix it claims; it is not merged."""


def bundle_name(matrix: str, device_type: str, architecture: str) -> str:
    return f"submitted-{matrix}-{device_type}-{architecture}.json"


def export_bundle(
    store: Store, cfg: MatrixConfig, architecture: str, out: Path, device_type: str = "cpu"
) -> tuple[Path, str]:
    """Write ``architecture``'s finished trials of ``cfg`` (as ``run --architecture`` ran them)
    from ``store`` into ``out``; returns the path and a one-line summary."""
    weights = domain_weights_of(store.records(kind="domain"))
    trials = [
        t for t in expand(cfg, device_type, weights) if t.labels["architecture"] == architecture
    ]
    got = {r.key: r.as_dict() for r in store.records([t.key for t in trials])}
    done = [
        got[t.key]
        for t in trials
        if t.key in got and got[t.key]["status"] in ("finished", "n/a", "failed")
    ]
    if not any(r["status"] == "finished" and r["kind"] == "train" for r in done):
        raise GanbenchError(
            f"store {store.path} has no finished {cfg.name} trial of {architecture!r} on "
            f"{device_type}: run `ganbench run {cfg.name} --architecture {architecture}` first"
        )
    missing = len(trials) - len(done)
    records = [{k: rec.get(k) for k in RECORD_FIELDS} for rec in done]
    env = next((r["env"] for r in records if r.get("env")), {})
    bundle = {
        "schema": BUNDLE_SCHEMA,
        "trial_schema": SCHEMA_VERSION,
        "origin": "submission",
        "matrix": cfg.name,
        "device_type": device_type,
        "architecture": architecture,
        "code": trials[0].config["architecture"] if trials else None,
        "environment": env,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / bundle_name(cfg.name, device_type, architecture)
    path.write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary = f"{len(records)} trials of {len(trials)}"
    if missing:
        summary += f"; {missing} not run yet (rerun the same `ganbench run` to finish them)"
    return path, summary


# what a bundle may hold (``validate_bundle``): anything past these is refused before use
MAX_BUNDLE_BYTES = 64 * 2**20  # the committed smoke bundle is 1.8 MB
MAX_DEPTH = 24  # nesting of objects and lists; a trial record needs 6
MAX_STRING = 100_000  # characters in one string (an error message, a config value)
MAX_RECORDS = 100_000
LATEST_TIME = 1e11  # seconds since the epoch (the year 5138): larger is not a timestamp
RECORD_KINDS = ("domain", "train", "evaluate")
RECORD_STATUSES = ("finished", "failed", "n/a")
LABEL_NAMES = ("architecture", "dataset", "evaluator")
# label values that are not registry names: the real-data row and the domain network
ROW_LABELS = ("real data", "domain network")


def _walk(value: Any) -> None:
    """Depth, string sizes and finite numbers, everywhere in a parsed bundle (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"it nests objects deeper than {MAX_DEPTH} levels")
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for k, v in children:
                if isinstance(k, str) and len(k) > MAX_STRING:
                    raise ValueError(f"a key is longer than {MAX_STRING} characters")
                stack.append((v, depth + 1))
        elif isinstance(item, str):
            if len(item) > MAX_STRING:
                raise ValueError(f"a string is longer than {MAX_STRING} characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"it holds the number {item} (NaN and infinities are refused)")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_record(rec: Any, i: int) -> None:
    where = f"record {i}"
    if not isinstance(rec, dict):
        raise ValueError(f"{where} is a {type(rec).__name__}, not an object")
    key = rec.get("key")
    if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"{where}: key must be 64 lowercase hex digits")
    where = f"record {key[:12]}"
    if rec.get("kind") not in RECORD_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(RECORD_KINDS)}")
    if rec.get("status") not in RECORD_STATUSES:
        raise ValueError(f"{where}: status must be one of {', '.join(RECORD_STATUSES)}")
    for name in ("config", "labels"):
        if not isinstance(rec.get(name), dict):
            raise ValueError(f"{where}: {name} must be an object")
    labels = rec["labels"]
    for name in LABEL_NAMES:
        value = labels.get(name)
        if value is not None and value not in ROW_LABELS and bad_name(value):
            raise ValueError(f"{where}: label {name}: {bad_name(value)}")
    seed = labels.get("seed")
    if seed is not None and not (
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
    ):
        raise ValueError(f"{where}: label seed must be a non-negative integer, got {seed!r}")
    for name in ("scores", "timings"):
        values = rec.get(name)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ValueError(f"{where}: {name} must be an object of numbers")
        for score, value in values.items():
            if not _number(value):
                raise ValueError(
                    f"{where}: {name[:-1]} {score!r} is {json.dumps(value)[:40]}, not a number"
                )
    if rec.get("outputs") is not None and not isinstance(rec["outputs"], dict):
        raise ValueError(f"{where}: outputs must be an object")
    env = rec.get("env")
    if (
        env is not None
        and not isinstance(env, dict)
        and not (_number(env) and float(env).is_integer())
    ):
        raise ValueError(f"{where}: env must be an object (or an index into envs)")
    if rec.get("error") is not None and not isinstance(rec["error"], str):
        raise ValueError(f"{where}: error must be a string")
    for name in ("created", "started", "finished"):
        value = rec.get(name)
        if value is not None and not (_number(value) and 0 <= value <= LATEST_TIME):
            raise ValueError(f"{where}: {name} must be seconds since the epoch, got {value!r}")


def validate_bundle(bundle: Any) -> None:
    """Refuse (ValueError, one line) a parsed bundle that is not what ganbench writes: its
    types, sizes, depth, names and numbers (finite, timestamps in range) are checked before
    anything reads it, so one bad bundle cannot crash the render of the others."""
    if not isinstance(bundle, dict):
        raise ValueError(f"it is a JSON {type(bundle).__name__}, not an object")
    _walk(bundle)
    for name in ("matrix", "device_type", "origin", "architecture", "exported"):
        if bundle.get(name) is not None and not isinstance(bundle[name], str):
            raise ValueError(f"its {name} must be a string")
    for name in ("matrix", "architecture"):
        if bundle.get(name) is not None and bad_name(bundle[name]):
            raise ValueError(f"its {name}: {bad_name(bundle[name])}")
    if bundle.get("device_type") not in (None, "cpu", "cuda"):
        raise ValueError(f"its device_type must be cpu or cuda, got {bundle['device_type']!r}")
    for name in ("environment", "code"):
        if bundle.get(name) is not None and not isinstance(bundle[name], dict):
            raise ValueError(f"its {name} must be an object")
    records = bundle.get("records", [])
    if not isinstance(records, list):
        raise ValueError("its records must be a list")
    if len(records) > MAX_RECORDS:
        raise ValueError(f"it holds {len(records)} records, more than {MAX_RECORDS}")
    for i, rec in enumerate(records):
        _check_record(rec, i)


def read_bundle(path: Path) -> dict[str, Any]:
    """A bundle file as a dict; malformed JSON, a wrong schema or anything
    :func:`validate_bundle` refuses is a one-line error."""
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise BundleRefused(
            f"result bundle {path} is {size / 2**20:.0f} MB, over the {MAX_BUNDLE_BYTES >> 20} MB "
            "a bundle may be: split it or remove it"
        )
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleRefused(
            f"result bundle {path} is not valid JSON ({exc}): fix or remove it"
        ) from None
    except RecursionError:
        raise BundleRefused(
            f"result bundle {path} nests objects deeper than {MAX_DEPTH} levels: "
            "it is not a ganbench bundle"
        ) from None
    if not isinstance(bundle, dict) or bundle.get("schema") not in READABLE_BUNDLE_SCHEMAS:
        got = bundle.get("schema") if isinstance(bundle, dict) else None
        raise BundleRefused(
            f"result bundle {path} has schema {got!r}, expected {BUNDLE_SCHEMA}: "
            "export it again with this version of ganbench"
        )
    if bundle.get("trial_schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise BundleRefused(
            f"result bundle {path} holds trials of schema {bundle.get('trial_schema')!r}, this "
            f"ganbench runs schema {SCHEMA_VERSION}: rerun the matrix and export again"
        )
    try:
        validate_bundle(bundle)
    except ValueError as exc:
        raise BundleRefused(f"result bundle {path.name} is refused: {exc}") from None
    try:
        return expand_envs(bundle)
    except ValueError as exc:
        raise BundleRefused(f"result bundle {path}: {exc}") from None


def compact_envs(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each distinct trial environment once, and the records with ``env`` as its index: the
    environment repeated on every record was a third of a committed bundle."""
    envs: list[dict] = []
    index: dict[str, int] = {}
    out = []
    for rec in records:
        env = rec.get("env")
        if isinstance(env, dict):
            text = json.dumps(env, sort_keys=True)
            if text not in index:
                index[text] = len(envs)
                envs.append(env)
            rec = rec | {"env": index[text]}
        out.append(rec)
    return envs, out


def expand_envs(bundle: dict) -> dict:
    """A bundle whose records point into ``envs`` (``compact_envs``), with each record's
    ``env`` a dict again; a bundle without ``envs`` is returned as it is. An index that points
    nowhere is a ValueError."""
    envs = bundle.pop("envs", None)
    if envs is None:
        return bundle
    if not isinstance(envs, list) or not all(isinstance(e, dict) for e in envs):
        raise ValueError("its envs is not a list of environments")
    for rec in bundle.get("records") or []:
        env = rec.get("env") if isinstance(rec, dict) else None
        if isinstance(env, int) and not isinstance(env, bool):
            if not 0 <= env < len(envs):
                raise ValueError(f"a record points to environment {env}, which it does not hold")
            rec["env"] = envs[env]
    return bundle


def load_records(path: Path) -> dict[str, dict]:
    """Finished, failed and n/a records by key, from a SQLite store or a result bundle."""
    path = Path(path)
    if not path.exists():
        raise GanbenchError(f"{path} does not exist: pass a store (.sqlite) or a bundle (.json)")
    if path.suffix == ".json":
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GanbenchError(f"{path} is not a result bundle ({exc})") from None
        if isinstance(bundle, dict):
            try:
                bundle = expand_envs(bundle)
            except ValueError as exc:
                raise GanbenchError(f"{path} is not a result bundle: {exc}") from None
        records = bundle.get("records") if isinstance(bundle, dict) else None
        if not isinstance(records, list):
            raise GanbenchError(f"{path} is not a result bundle: it has no records")
        return {r["key"]: r for r in records if isinstance(r, dict) and "key" in r}
    store = Store(path)
    try:
        return {
            r.key: r.as_dict() for r in store.records() if r.status in ("finished", "failed", "n/a")
        }
    finally:
        store.close()
