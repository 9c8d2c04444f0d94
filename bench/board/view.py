"""The view: the trials of one matrix on one device type with their records, and the
checked submissions that claim that matrix and device; every table of the board is built
from one view and one dataset.

Besides :class:`MatrixView` this module holds what the table builders ask of a view: its
rows (architectures and controls), the per-seed values of a score in a row, the primary score
columns of a matrix, and how each column is validated (:func:`column_kind`). It also holds
the marks of a submitted architecture's reproduction, which the view decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganbench.board.reproduce import Summary, compare
from ganbench.board.sources import keep_committed
from ganbench.board.submission import Submission, check_submission
from ganbench.core.evaluator import evaluator_family
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score
from ganbench.run.bundles import BundleRefused
from ganbench.run.config import MatrixConfig
from ganbench.run.trials import CHECKPOINT, Trial, domain_weights_of, expand

# how a submitted architecture's rows are marked
REPRODUCED, DIFFERS, NOT_REPRODUCED = "✓", "✗", "†"
ORIGIN_WORDS = {REPRODUCED: "reproduced", DIFFERS: "differs", NOT_REPRODUCED: "not reproduced"}
REPRODUCTION_NOTE = (
    "Same key, same numbers: a trial's key names the declared versions of the code and the "
    "sha256 of the pinned feature networks that produced it, so a key run on another machine "
    "must give the same numbers, up to each score's declared tolerance. Rows submitted by "
    f"others are marked {REPRODUCED} reproduced (the maintainers ran the same keys and every "
    f"compared score agrees within its tolerance), {DIFFERS} differs (hover: the largest "
    f"difference) or {NOT_REPRODUCED} not yet reproduced."
)


@dataclass
class Row:
    """One row of a table: an architecture or a control (untrained network, real data)."""

    architecture: str
    reference: str  # "trained" | "untrained" | "real"
    submitted: str | None = None  # the bundle file of a submitted architecture
    # a submission's reproduction: "✓" reproduced, "✗" differs, "†" not yet reproduced
    mark: str = ""
    mark_title: str = ""  # what hovering the mark tells (the largest difference)

    @property
    def label(self) -> str:
        if self.reference == "real":
            return "real data (reference)"
        mark = f" {self.mark}" if self.submitted and self.mark else ""
        if self.reference == "untrained":
            return f"{self.architecture}{mark} (untrained)"
        return self.architecture + mark

    @property
    def title(self) -> str:
        return self.mark_title if self.submitted else ""

    @property
    def is_control(self) -> bool:
        return self.reference != "trained"


def short_commit(commit: str | None) -> str:
    """The first 12 hex digits of a commit, keeping its ``-dirty`` mark (uncommitted changes)."""
    if not commit:
        return "unknown"
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + ("-dirty" if dirty else "")


def reproduction_mark(summary: Summary) -> tuple[str, str]:
    """A submitted architecture's mark and its hover text: ✓ the maintainers' runs of the
    same keys agree within every compared score's tolerance, ✗ they differ, † they have
    not run every key yet."""
    if summary.differing:
        bad = max(summary.differing, key=lambda a: a.worst.excess if a.worst else 0)
        detail = bad.worst.words() if bad.worst else bad.note
        return DIFFERS, (
            f"differs from the maintainers' run in {len(summary.differing)} of "
            f"{len(summary.agreements)} trials; largest: {detail}"
        )
    if summary.missing:
        return NOT_REPRODUCED, (
            f"not yet reproduced: the maintainers' runs lack {len(summary.missing)} of "
            f"{len(summary.agreements)} trials"
        )
    worst = summary.worst
    detail = f"; largest difference: {worst.words()}" if worst else ""
    compared = sum(len(a.compared) for a in summary.agreements)
    return REPRODUCED, (
        f"reproduced: the maintainers ran the same {len(summary.agreements)} trial keys and "
        f"all {compared} compared scores agree within their tolerances{detail}"
    )


class MatrixView:
    """The trials of one matrix on one device type, with their records, plus the checked
    submissions that claim this matrix and device."""

    def __init__(
        self,
        cfg: MatrixConfig,
        device_type: str,
        records: dict[str, dict],
        submissions: list[tuple[Path, dict]] = (),
        bundled: dict[str, dict] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device_type = device_type
        self.own: list[Trial] = expand(cfg, device_type, domain_weights_of(records))
        self.trials: list[Trial] = list(self.own)
        self.records = keep_committed(
            self.own, {t.key: records[t.key] for t in self.own if t.key in records}, bundled or {}
        )
        # the maintainers' own records, the only ones their bundle is written from
        self.maintainers = dict(self.records)
        self.submitted: dict[str, Submission] = {}
        # per submitted architecture: the maintainers' records compared with the submitted ones
        self.reproduction: dict[str, Summary] = {}
        self.refused: list[str] = []
        for path, bundle in submissions:
            if bundle.get("matrix") == cfg.name and bundle.get("device_type") == device_type:
                self._take(path, bundle, records)

    def _take(self, path: Path, bundle: dict, records: dict[str, dict]) -> None:
        """Check one submitted bundle of this matrix and device and add its trials, each
        with the maintainers' record of its key where they have one; a refusal is noted."""
        try:
            sub = check_submission(bundle, path, self.cfg)
        except BundleRefused as exc:
            self.refused.append(str(exc))
            return
        if sub.architecture in self.submitted:
            self.refused.append(
                f"submitted bundle {path.name}: {sub.architecture!r} is also submitted by "
                f"{self.submitted[sub.architecture].path.name}; keep one"
            )
            return
        self.submitted[sub.architecture] = sub
        self.trials.extend(sub.trials)
        keys = [t.key for t in sub.trials]
        self.reproduction[sub.architecture] = Summary(compare(records, sub.records, keys))
        for t in sub.trials:
            self.records[t.key] = records.get(t.key) or sub.records[t.key]

    def mark(self, architecture: str) -> tuple[str, str]:
        """A submitted architecture's mark and its hover text (:func:`reproduction_mark`);
        empty for the maintainers' own architectures."""
        summary = self.reproduction.get(architecture)
        if summary is None:
            return "", ""
        return reproduction_mark(summary)

    @property
    def empty(self) -> bool:
        """No finished train or evaluation on this device (domain networks are device-free:
        they alone do not make a device's section)."""
        return not any(
            r["status"] == "finished" and r["kind"] != "domain" for r in self.records.values()
        )

    @property
    def slug(self) -> str:
        return f"{self.cfg.name}-{self.device_type}"

    def _own_envs(self) -> list[dict]:
        return [
            self.records[t.key]["env"]
            for t in self.own
            if t.key in self.records and self.records[t.key].get("env")
        ]

    def devices(self) -> list[str]:
        """Each device with its software: torch, and on a GPU the driver and CUDA versions."""
        return sorted({_device_words(env) for env in self._own_envs()})

    def commits(self) -> list[str]:
        """Short commits of the records; ``-dirty``: run from a work tree with uncommitted changes."""
        return sorted({short_commit(env.get("git_commit")) for env in self._own_envs()})

    def rows(self, dataset: str) -> list[Row]:
        seen: dict[tuple[str, str], Row] = {}
        for t in self.trials:
            if (
                t.labels["dataset"] == dataset
                and t.kind != "domain"
                and t.labels["reference"] != CHECKPOINT
            ):
                lab = t.labels
                arch = lab["architecture"] if lab["reference"] != "real" else "real data"
                sub = self.submitted.get(arch)
                seen.setdefault(
                    (arch, lab["reference"]),
                    Row(arch, lab["reference"], sub.path.name if sub else None, *self.mark(arch)),
                )
        order = {"trained": 0, "untrained": 1, "real": 2}
        return sorted(seen.values(), key=lambda r: (order[r.reference], r.architecture))

    def cells(
        self, dataset: str, row: Row, kind: str, evaluator: str | None = None
    ) -> list[tuple[Trial, dict | None]]:
        out = []
        for t in self.trials:
            lab = t.labels
            if t.kind != kind or lab["dataset"] != dataset or lab["reference"] != row.reference:
                continue
            if row.reference != "real" and lab["architecture"] != row.architecture:
                continue
            if evaluator is not None and lab.get("evaluator") != evaluator:
                continue
            out.append((t, self.records.get(t.key)))
        return out

    def evaluators_of(self, family: str) -> list[str]:
        return [ev for ev in self.cfg.evaluators if evaluator_family(ev) == family]

    def first_seed(self, labels: dict) -> bool:
        """Whether a trial (by its labels) is of its architecture's first seed: the one whose
        figures the board shows."""
        return labels["seed"] == (self.cfg.seeds_for(labels["architecture"]) or self.cfg.seeds)[0]


def _device_words(env: dict) -> str:
    soft = [f"torch {env['torch']}"] if env.get("torch") else []
    if env.get("device_type") == "cuda":
        soft += [f"driver {env['driver']}"] if env.get("driver") else []
        soft += [f"CUDA {env['cuda']}"] if env.get("cuda") else []
    return f"{env.get('device', '?')}" + (f" ({', '.join(soft)})" if soft else "")


def rows_by_reference(
    view: MatrixView, dataset: str
) -> tuple[list[Row], dict[str, Row], Row | None]:
    """The rows of ``dataset``: the trained ones, the untrained controls by architecture, and
    the real-data row (None where the matrix has none)."""
    rows = view.rows(dataset)
    trained = [r for r in rows if r.reference == "trained"]
    untrained = {r.architecture: r for r in rows if r.reference == "untrained"}
    real = next((r for r in rows if r.reference == "real"), None)
    return trained, untrained, real


def score_columns(
    cfg: MatrixConfig, evaluators: list[str] | None = None
) -> list[tuple[str, Score]]:
    """(evaluator, score) of every primary score of ``evaluators`` (default: the matrix's)."""
    cols = []
    for ev in cfg.evaluators if evaluators is None else evaluators:
        cls = evaluator_registry(ev).get(ev)
        cols.extend((ev, s) for s in cls.scores if s.primary)
    return cols


def seed_values(
    view: MatrixView, dataset: str, row: Row | None, ev: str, score: Score
) -> tuple[list[float], list[float]]:
    """Per-seed values of ``score`` in one row (finished trials only), and of its control
    where the score declares one."""
    values: list[float] = []
    controls: list[float] = []
    if row is None:
        return values, controls
    for _, rec in view.cells(dataset, row, "evaluate", ev):
        scores = (rec or {}).get("scores") or {}
        if rec and rec["status"] == "finished" and score.name in scores:
            values.append(scores[score.name])
            if score.control and score.control in scores:
                controls.append(scores[score.control])
    return values, controls


def column_kind(ev: str) -> str:
    """How a column is validated and ranked: "quality" (metrics), "generator" (what a
    generator learned: dissection, directions, intrinsic explanations), "discriminator" (an
    attribution method explaining D's logit: ranked against the other methods)."""
    family = evaluator_family(ev)
    if family == "quality":
        return "quality"
    if family == "explainability" and evaluator_registry(ev).get(ev).explains == "discriminator":
        return "discriminator"
    return "generator"


def trial_counts(view: MatrixView) -> dict[str, int]:
    """The maintainers' trials of the matrix by status: finished, n/a (by design: an evaluator
    that does not apply), failed, not run."""
    counts = {"finished": 0, "n/a": 0, "failed": 0, "not run": 0}
    for t in view.own:
        rec = view.records.get(t.key)
        status = rec["status"] if rec else "not run"
        counts[status if status in counts else "not run"] += 1
    return counts
