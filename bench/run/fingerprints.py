"""Golden fingerprints: the numbers each component computes on a tiny, fixed CPU input.

Keys name components by their declared ``version`` (:mod:`ganbench.run.keys`), so the suite
must notice when code starts computing other numbers under an unchanged version. Each
built-in architecture, dataset, metric and explainer, the harness (``SCHEMA_VERSION``) and
each pinned domain network has a fingerprint: a deterministic run of a second or less
whose numbers are kept in ``tests/fingerprints/<family>/<name>.json`` beside the versions
they were recorded at. ``make test`` recomputes them (``tests/test_fingerprints.py``):

* numbers moved, versions unchanged: fail, naming the component, its file and the version
  to bump, then the command that re-records the fingerprint;
* a version changed since the recording: fail until the fingerprint is re-recorded;
* numbers and versions as recorded: pass.

Numbers are compared with :data:`RTOL`/:data:`ATOL` (float32 arithmetic whose summation
order differs between thread counts and CPU instruction sets), see :func:`compare`.
A fingerprint exercises the code paths of a real trial (the architecture's ``train_step``
through the harness loop, an evaluator through :class:`EvalContext` with the pinned
domain network) on inputs small enough for the whole set to run in well under a minute.

``ganbench fingerprint`` checks them and prints a table; ``ganbench fingerprint --record
NAME ...`` re-records (refusing, without ``--force``, numbers that moved under unchanged
versions).

This module holds the record and the check: versions, dependencies, comparison, the files
and the messages. What each family computes is :mod:`ganbench.run.fingerprint_values`, on the
fixed inputs of :mod:`ganbench.run.fingerprint_inputs`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import ARCHITECTURES, DATASETS, EXPLAINERS, METRICS, Registry
from ganbench.datasets.domain import DOMAIN_VERSION, PINNED_DIR
from ganbench.run.fingerprint_inputs import evaluator_setup
from ganbench.run.fingerprint_values import compute_values, plain_values
from ganbench.run.keys import SCHEMA_VERSION, source_file_hash

# float32 results whose reductions run in another order (threads, SIMD width) agree to a few
# ulps; the chains of a fingerprint (a few training steps, then a score) amplify that to ~1e-6
RTOL = 1e-4
ATOL = 1e-6
FAMILIES = ("harness", "domain", "architecture", "dataset", "metric", "explainer")
_REGISTRIES: dict[str, Registry] = {
    "architecture": ARCHITECTURES,
    "dataset": DATASETS,
    "metric": METRICS,
    "explainer": EXPLAINERS,
}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tests" / "fingerprints"


@dataclass
class Fingerprint:
    """One component's numbers on its fixed input, with the versions they depend on."""

    family: str
    name: str
    version: str  # the component's own declared version
    values: dict[str, float | list[float]]
    # versions of what else the numbers depend on: {"architecture dcgan": "1", "schema": "2"}
    depends: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.family} {self.name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "component": self.label,
            "version": self.version,
            "depends": self.depends,
            "values": self.values,
            "recorded_with": {"torch": torch.__version__, "numpy": np.__version__},
        }


def builtin_names(family: str) -> list[str]:
    """The built-in (shipped) members of a family: plugins keep fingerprints of their own."""
    if family == "harness":
        return ["schema"]
    if family == "domain":
        names = sorted(p.name for p in PINNED_DIR.iterdir() if (p / "domain.json").is_file())
        return ["training", *names]
    reg = _REGISTRIES[family]
    return [n for n in reg.names() if reg.get(n).__module__.startswith("ganbench.")]


def all_components() -> list[tuple[str, str]]:
    return [(family, name) for family in FAMILIES for name in builtin_names(family)]


def _version_of(family: str, name: str) -> str:
    if family == "harness":
        return str(SCHEMA_VERSION)
    if family == "domain":
        if name == "training":
            return DOMAIN_VERSION
        meta = json.loads((PINNED_DIR / name / "domain.json").read_text())
        return f"{DOMAIN_VERSION}/{meta['sha256'][:16]}"
    return str(_REGISTRIES[family].get(name).version)


def _depends(family: str, name: str) -> dict[str, str]:
    deps = {"schema": str(SCHEMA_VERSION)}
    if family in ("metric", "explainer"):
        arch, dataset = evaluator_setup(name)
        deps[f"architecture {arch}"] = _version_of("architecture", arch)
        deps[f"dataset {dataset}"] = _version_of("dataset", dataset)
        if (PINNED_DIR / dataset / "domain.json").is_file():
            deps[f"domain {dataset}"] = _version_of("domain", dataset)
    elif family == "dataset" and (PINNED_DIR / name / "domain.json").is_file():
        deps[f"domain {name}"] = _version_of("domain", name)
    elif family == "harness":
        deps = {}
    return deps


def compute(family: str, name: str) -> Fingerprint:
    """Run one component's fingerprint (on the CPU, one thread unless set otherwise)."""
    start = time.perf_counter()
    values = plain_values(compute_values(family, name))
    return Fingerprint(
        family,
        name,
        _version_of(family, name),
        values,
        _depends(family, name),
        time.perf_counter() - start,
    )


def path_of(family: str, name: str, root: Path = DEFAULT_DIR) -> Path:
    return Path(root) / family / f"{name}.json"


def load(family: str, name: str, root: Path = DEFAULT_DIR) -> dict[str, Any] | None:
    path = path_of(family, name, root)
    return json.loads(path.read_text()) if path.is_file() else None


def compare(
    stored: dict[str, Any], values: dict[str, Any], rtol: float = RTOL, atol: float = ATOL
) -> list[str]:
    """The values that moved: ``"name: recorded -> now"``, worst first; [] when all agree."""
    moved: list[tuple[float, str]] = []
    for key in sorted(set(stored) | set(values)):
        if key not in stored or key not in values:
            where = "new" if key not in stored else "gone"
            moved.append((math.inf, f"{key}: {where}"))
            continue
        a = np.atleast_1d(np.asarray(stored[key], dtype=np.float64))
        b = np.atleast_1d(np.asarray(values[key], dtype=np.float64))
        if a.shape != b.shape:
            moved.append((math.inf, f"{key}: {a.size} values recorded, {b.size} now"))
            continue
        bad = ~np.isclose(b, a, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            err = np.abs(b - a) / (atol + rtol * np.abs(a))
            i = int(np.nanargmax(np.where(bad, err, -1)))
            shown = f"[{i}] " if a.size > 1 else ""
            moved.append((float(err[i]), f"{key}{shown}: {a[i]:.7g} -> {b[i]:.7g}"))
    return [text for _, text in sorted(moved, key=lambda m: -m[0])]


def source_of(family: str, name: str) -> str:
    """Where to bump the version of a component, for messages."""
    if family == "harness":
        return "SCHEMA_VERSION in bench/run/keys.py"
    if family == "domain":
        return "DOMAIN_VERSION in datasets/domain.py"
    cls = _REGISTRIES[family].get(name)
    found = source_file_hash(cls)
    return f"`version` of {cls.__qualname__} in {found[0] if found else cls.__module__}"


def record_command(family: str, name: str) -> str:
    return f"ganbench fingerprint --record {family}:{name}"


@dataclass
class Verdict:
    """The outcome of checking one component against its recorded fingerprint."""

    family: str
    name: str
    ok: bool
    message: str
    seconds: float = 0.0


def check(
    family: str, name: str, root: Path = DEFAULT_DIR, now: Fingerprint | None = None
) -> Verdict:
    """Compare one component with its recorded fingerprint; the message says what to do."""
    now = now or compute(family, name)
    label, fix = f"{family} {name}", record_command(family, name)
    stored = load(family, name, root)
    if stored is None:
        return Verdict(family, name, False, f"{label} has no fingerprint: record it with `{fix}`")
    moved = compare(stored["values"], now.values)
    bumped = stored["version"] != now.version
    deps = {k: v for k, v in now.depends.items() if stored.get("depends", {}).get(k) != v}
    if bumped or deps:
        why = []
        if bumped:
            why.append(f"its version is now {now.version!r}, recorded at {stored['version']!r}")
        why += [f"{k} is now at {v!r}" for k, v in sorted(deps.items())]
        what = "numbers moved" if moved else "numbers unchanged"
        return Verdict(
            family,
            name,
            False,
            f"{label}: {'; '.join(why)} ({what}): re-record its fingerprint with `{fix}`",
            now.seconds,
        )
    if moved:
        shown = "; ".join(moved[:3]) + (f"; and {len(moved) - 3} more" if len(moved) > 3 else "")
        deps = [k for k in now.depends if k != "schema"]
        upstream = (
            f" It runs on {', '.join(deps)}: if their fingerprints fail too, fix those first."
            if deps
            else ""
        )
        return Verdict(
            family,
            name,
            False,
            f"{label} computes different numbers at the same version {now.version!r} ({shown}): "
            f"stored results under its keys would no longer be what the code gives. Bump "
            f"{source_of(family, name)}, then re-record with `{fix}` (if the change is "
            f"meant to keep every number, find what moved them instead).{upstream}",
            now.seconds,
        )
    return Verdict(family, name, True, f"{label}: as recorded", now.seconds)


def record(
    family: str, name: str, root: Path = DEFAULT_DIR, force: bool = False
) -> tuple[Path, str]:
    """Write a component's fingerprint. Numbers that moved while every version stayed as
    recorded are refused unless ``force`` (say, for a new torch that sums differently)."""
    now = compute(family, name)
    stored = load(family, name, root)
    if stored is not None and not force:
        same_versions = stored["version"] == now.version and stored.get("depends") == now.depends
        moved = compare(stored["values"], now.values)
        if same_versions and moved:
            raise GanbenchError(
                f"{family} {name}: numbers moved ({moved[0]}) but no version did: bump "
                f"{source_of(family, name)} first (or pass --force if nothing in the code changed)"
            )
    path = path_of(family, name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(now.as_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path, f"{now.label}: {len(now.values)} values in {now.seconds:.1f} s"


def parse_targets(targets: list[str]) -> list[tuple[str, str]]:
    """``family:name`` or a bare name (looked up in every family); none: every component."""
    if not targets:
        return all_components()
    out = []
    known = all_components()
    for target in targets:
        family, sep, name = target.partition(":")
        if sep:
            if (family, name) not in known:
                raise GanbenchError(f"no built-in component {target!r} (e.g. architecture:dcgan)")
            out.append((family, name))
            continue
        hits = [(f, n) for f, n in known if n == target]
        if not hits:
            raise GanbenchError(
                f"no built-in component named {target!r}; use FAMILY:NAME with a family of "
                f"{', '.join(FAMILIES)}"
            )
        out.extend(hits)
    return out


def on_one_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with one torch thread (the fingerprints are tiny; threads only add noise)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(saved)
