"""Trial keys: the sha256 of a config's canonical JSON, built from declared versions.

A component (architecture, dataset, metric, explainer) enters a key as its *part*: name,
declared ``version`` and resolved parameters. No hash of source code is in a key: a
comment or a refactor keeps every key, and a change that moves a number must bump the
component's ``version`` (the golden fingerprints in ``tests/fingerprints/`` catch a
forgotten bump; see :mod:`ganbench.run.fingerprints`). The source files' hashes are kept in
each record's environment as provenance (:func:`source_hashes`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any

# Bump when the harness changes what a trial's numbers mean (the training loop, the sample
# streams of EvalContext, the layout of a config). 2: parts name declared versions only, and
# evaluations name their domain network by the sha256 of its weights.
SCHEMA_VERSION = 2


def canonical_json(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def trial_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def part_of(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """A component as a key holds it: registered name, declared version, resolved parameters."""
    return {"name": cls.name, "version": str(cls.version), "params": params}


_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@cache
def source_file_hash(cls: type) -> tuple[str, str] | None:
    """(path, 16 hex digits of the sha256) of the source file defining ``cls``; provenance only."""
    path = inspect.getsourcefile(cls)
    if not path:
        return None
    p = Path(path).resolve()
    try:
        shown = str(p.relative_to(_PACKAGE_ROOT))
    except ValueError:
        shown = p.name
    return shown, hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def source_hashes(classes: list[type]) -> dict[str, str]:
    """The source files of ``classes`` with their hashes, for a record's provenance."""
    out = {}
    for cls in classes:
        found = source_file_hash(cls)
        if found:
            out[found[0]] = found[1]
    return out
