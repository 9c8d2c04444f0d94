"""Collecting what the leaderboard is rendered from: the maintainers' records (their store,
and the bundles an earlier render wrote) by trial key, and the submitted bundles, which stay
apart until a view checks them against the matrix they claim.

A matrix's committed records also stay until the store holds a whole run of it
(:func:`keep_committed`), so a store that ran a few shared keys for another matrix does not
lay its own commit and timings over the committed run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganbench.run.bundles import BundleRefused, read_bundle
from ganbench.run.config_load import load_config
from ganbench.run.store import DONE, Store
from ganbench.run.trials import Trial

DEVICE_TYPES = ("cuda", "cpu")


@dataclass
class Sources:
    """What the leaderboard is rendered from: the maintainers' records (their store and the
    bundles the renderer wrote) by key, and submitted bundles, still to be checked per matrix."""

    records: dict[str, dict] = field(default_factory=dict)
    # each maintainers' bundle's own records by key (file name -> key -> record), before the
    # store's or another bundle's were laid over them
    bundled: dict[str, dict[str, dict]] = field(default_factory=dict)
    submissions: list[tuple[Path, dict]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def maintainers_bundle_names(configs: list[str]) -> set[str]:
    """The only file names that may hold the maintainers' own records: the bundles
    :func:`ganbench.board.data_files.write_bundle` writes, ``<matrix>-<device>.json`` for the
    rendered matrices."""
    return {f"{load_config(name).name}-{dt}.json" for name in configs for dt in DEVICE_TYPES}


def collect(store_path: Path, bundle_dir: Path, own_names: set[str] | None = None) -> Sources:
    """Render bundles first, then the store (newer) over them; submissions kept apart.

    Only the files named in ``own_names`` (default: every file not named ``submitted-*``)
    may hold the maintainers' records. Any other bundle is a submission whatever its
    ``origin`` says: a file that claims to be the maintainers' is checked like every
    submission (and refused where it does not pass), never trusted."""
    src = Sources()
    for path in sorted(bundle_dir.glob("*.json")) if bundle_dir.is_dir() else []:
        own = (
            path.name in own_names
            if own_names is not None
            else not path.name.startswith("submitted-")
        )
        try:
            bundle = read_bundle(path)
        except BundleRefused as exc:
            if not own:
                src.refused.append(str(exc))
                continue
            raise
        if not own or bundle.get("origin") == "submission":
            _add_submission(src, path, bundle)
            continue
        for rec in bundle.get("records", []):
            rec = rec | {"origin": "bundle"}
            src.records[rec["key"]] = src.bundled.setdefault(path.name, {})[rec["key"]] = rec
    if store_path.exists():
        store = Store(store_path)
        for rec in store.records():
            if rec.status in ("finished", "failed", "n/a"):
                src.records[rec.key] = rec.as_dict() | {"origin": "store"}
        store.close()
    return src


def _add_submission(src: Sources, path: Path, bundle: dict) -> None:
    """Keep ``bundle`` as a submission; one that claims another origin is noted and checked
    as a submission all the same."""
    if bundle.get("origin") != "submission":
        src.refused.append(
            f"result bundle {path.name}: claims origin {bundle.get('origin')!r}, but only "
            "the maintainers' own files (<matrix>-<device>.json) hold their records; "
            "checked as a submission"
        )
        bundle = bundle | {"origin": "submission"}
    src.submissions.append((path, bundle))


def keep_committed(
    own: list[Trial], records: dict[str, dict], bundled: dict[str, dict]
) -> dict[str, dict]:
    """A matrix's committed records stay until the store holds a whole run of the matrix.

    Trials are shared by key across matrices (the quick look's real-data rows can be the
    smoke matrix's), so a store that ran a few of this matrix's keys for another matrix, or
    another matrix's bundle holding the same key, would otherwise lay its record, with its own
    commit and timings, over the committed run's. Where the store has a record of every trial
    of the matrix, its records replace the bundle's (``bundled``: this matrix's own bundle);
    otherwise a finished or n/a bundle record is kept, and the rest fills only what the bundle
    lacks or did not finish."""
    if all(records.get(t.key, {}).get("origin") == "store" for t in own):
        return records
    kept = dict(records)
    for key in records:
        old = bundled.get(key)
        if old is not None and old["status"] in DONE:
            kept[key] = old
    return kept
