"""Reproduction by value: two records of one trial key agree when every compared score does.

A key names everything that decides a trial's numbers, so two honest runs of it (a
submitter's and the maintainers', a run on 1 and on 2 threads) should give the same numbers
up to what the machine changes. Each score declares how much that is
(:class:`ganbench.core.scores.Score` ``tolerance``); costs are never compared. Train records
are compared by the hash of the weights they wrote: equal hashes mean bit-identical
training, otherwise the evaluations of the two models are compared as two draws of
training, within their scores' tolerances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import UnknownNameError, evaluator_registry
from ganbench.core.scores import Score, Tolerance


@dataclass(frozen=True)
class Difference:
    """One score of one key on both sides, with its tolerance."""

    key: str
    evaluator: str
    score: str
    ours: float
    theirs: float
    tolerance: Tolerance

    @property
    def excess(self) -> float:
        """The difference in units of the tolerance: above 1 disagrees."""
        return self.tolerance.excess(self.ours, self.theirs)

    def words(self) -> str:
        return (
            f"{self.evaluator} {self.score}: {self.ours:.4g} vs {self.theirs:.4g} "
            f"(tolerance {self.tolerance.words()})"
        )


@dataclass
class Agreement:
    """How one key's two records compare."""

    key: str
    status: str  # "agrees" | "differs" | "missing" (no record on one side) | "status"
    compared: list[Difference] = field(default_factory=list)
    note: str = ""

    @property
    def worst(self) -> Difference | None:
        return max(self.compared, key=lambda d: d.excess, default=None)


def declared(evaluator: str) -> dict[str, Score] | None:
    """The score declarations of an evaluator, or None when it is not registered here."""
    try:
        return {s.name: s for s in evaluator_registry(evaluator).get(evaluator).scores}
    except (UnknownNameError, GanbenchError):
        return None


def compare_records(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> Agreement:
    """Compare two records of one key (store rows or bundle records as dicts)."""
    key = (ours or theirs or {}).get("key", "")
    if ours is None or theirs is None:
        return Agreement(key, "missing", note="no record on one side")
    if ours.get("status") != theirs.get("status"):
        return Agreement(
            key, "status", note=f"status {ours.get('status')} vs {theirs.get('status')}"
        )
    if ours.get("kind") != "evaluate" or ours.get("status") != "finished":
        note = ""
        if ours.get("kind") == "train":
            a = (ours.get("outputs") or {}).get("weights_sha256")
            b = (theirs.get("outputs") or {}).get("weights_sha256")
            note = "bit-identical weights" if a and a == b else "weights differ" if a and b else ""
        return Agreement(key, "agrees", note=note)
    name = ours["config"]["evaluator"]["name"]
    scores = declared(name)
    if scores is None:
        return Agreement(key, "missing", note=f"evaluator {name!r} is not registered here")
    a, b = ours.get("scores") or {}, theirs.get("scores") or {}
    diffs = [
        Difference(key, name, s.name, float(a[s.name]), float(b[s.name]), s.tolerance)
        for s in scores.values()
        if s.tolerance is not None and s.name in a and s.name in b
    ]
    bad = [d for d in diffs if d.excess > 1]
    return Agreement(key, "differs" if bad else "agrees", diffs)


def compare(
    ours: Mapping[str, dict], theirs: Mapping[str, dict], keys: Iterable[str] | None = None
) -> list[Agreement]:
    """Compare the records of ``keys`` (default: the keys both sides hold)."""
    wanted = list(keys) if keys is not None else [k for k in ours if k in theirs]
    return [compare_records(ours.get(k), theirs.get(k)) for k in wanted]


@dataclass
class Summary:
    """A set of comparisons, summed up."""

    agreements: list[Agreement]

    @property
    def differing(self) -> list[Agreement]:
        return [a for a in self.agreements if a.status in ("differs", "status")]

    @property
    def missing(self) -> list[Agreement]:
        return [a for a in self.agreements if a.status == "missing"]

    @property
    def reproduced(self) -> bool:
        return bool(self.agreements) and not self.differing and not self.missing

    @property
    def worst(self) -> Difference | None:
        return max(
            (a.worst for a in self.agreements if a.worst is not None),
            key=lambda d: d.excess,
            default=None,
        )

    def line(self) -> str:
        scores = sum(len(a.compared) for a in self.agreements)
        worst = self.worst
        text = (
            f"{len(self.agreements)} keys, {scores} scores compared: "
            f"{len(self.differing)} keys differ, {len(self.missing)} missing"
        )
        if worst is not None:
            text += f"; largest difference {worst.excess:.2f}x its tolerance: {worst.words()}"
        return text
