"""The result store: SQLite in WAL mode, one row per trial; artifacts in a folder beside it
(:mod:`ganbench.run.layout`).

Only the driver process writes. A row's status is pending, running, finished, failed
or n/a; a row left ``running`` by a process that no longer exists is redone on rerun.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.run.layout import artifact_dir, artifacts_root
from ganbench.run.processes import pid_alive

STATUSES = ("pending", "running", "finished", "failed", "n/a")
DONE = ("finished", "n/a")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key       TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    status    TEXT NOT NULL,
    config    TEXT NOT NULL,
    labels    TEXT NOT NULL DEFAULT '{}',
    scores    TEXT,
    timings   TEXT,
    env       TEXT,
    outputs   TEXT,
    error     TEXT,
    host      TEXT,
    pid       INTEGER,
    attempts  INTEGER NOT NULL DEFAULT 0,
    created   REAL NOT NULL,
    started   REAL,
    finished  REAL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials(status);
"""


@dataclass
class TrialRecord:
    key: str
    kind: str
    status: str
    config: dict[str, Any]
    labels: dict[str, Any]
    scores: dict[str, float] | None
    timings: dict[str, float] | None
    env: dict[str, Any] | None
    outputs: dict[str, Any] | None  # what a trial wrote besides numbers (a weights sha256)
    error: str | None
    host: str | None
    pid: int | None
    attempts: int
    created: float
    started: float | None
    finished: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Store:
    """A SQLite result store at ``path``; artifacts live beside it (:mod:`ganbench.run.layout`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.artifacts = artifacts_root(self.path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(trials)")}
            if "outputs" not in columns:  # a store written before records had outputs
                self.db.execute("ALTER TABLE trials ADD COLUMN outputs TEXT")
        except sqlite3.DatabaseError as exc:
            raise GanbenchError(
                f"store {self.path} is not a ganbench SQLite database ({exc}): pass another --store path"
            ) from None

    def close(self) -> None:
        self.db.close()

    def artifact_dir(self, key: str) -> Path:
        return artifact_dir(self.artifacts, key)

    def _row(self, row: sqlite3.Row) -> TrialRecord:
        fields = dict(row)
        for name in ("config", "labels", "scores", "timings", "env", "outputs"):
            fields[name] = _loads(fields[name])
        return TrialRecord(**fields)

    def get(self, key: str) -> TrialRecord | None:
        row = self.db.execute("SELECT * FROM trials WHERE key = ?", (key,)).fetchone()
        return self._row(row) if row else None

    def records(self, keys: list[str] | None = None, kind: str | None = None) -> list[TrialRecord]:
        """Rows by key (all when None), optionally of one kind only."""
        if keys is None:
            if kind is None:
                rows = self.db.execute("SELECT * FROM trials ORDER BY created").fetchall()
            else:
                rows = self.db.execute(
                    "SELECT * FROM trials WHERE kind = ? ORDER BY created", (kind,)
                ).fetchall()
            return [self._row(r) for r in rows]
        out = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT * FROM trials WHERE key IN ({marks})", chunk).fetchall()
            out.extend(self._row(r) for r in rows)
        return [r for r in out if kind is None or r.kind == kind]

    def held_elsewhere(self, record: TrialRecord) -> bool:
        """True when another live process on this host is running this trial now."""
        return (
            record.status == "running"
            and record.host == socket.gethostname()
            and record.pid is not None
            and record.pid != os.getpid()
            and pid_alive(record.pid)
        )

    def ensure(self, key: str, kind: str, config: dict, labels: dict) -> None:
        """Add a pending row for a trial unless one exists."""
        self.db.execute(
            "INSERT OR IGNORE INTO trials (key, kind, status, config, labels, created) VALUES (?,?,?,?,?,?)",
            (
                key,
                kind,
                "pending",
                json.dumps(config, sort_keys=True),
                json.dumps(labels),
                time.time(),
            ),
        )

    def put(self, rec: dict[str, Any]) -> None:
        """Write a whole record (a migrated or imported one), replacing any row of its key."""
        self.db.execute(
            "INSERT OR REPLACE INTO trials (key, kind, status, config, labels, scores, timings, "
            "env, outputs, error, host, pid, attempts, created, started, finished) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec["key"],
                rec["kind"],
                rec["status"],
                json.dumps(rec["config"], sort_keys=True),
                json.dumps(rec.get("labels") or {}),
                _dumps(rec.get("scores")),
                _dumps(rec.get("timings")),
                _dumps(rec.get("env")),
                _dumps(rec.get("outputs")),
                rec.get("error"),
                rec.get("host") or (rec.get("env") or {}).get("host"),
                None,  # no live process holds it
                rec.get("attempts") or 1,
                rec.get("created") or rec.get("started") or time.time(),
                rec.get("started"),
                rec.get("finished"),
            ),
        )

    def claim(self, key: str, mine: set[int] = frozenset()) -> str:
        """Take a trial for this run, atomically across processes sharing the store: returns
        ``"claimed"`` (now ``running``, held by this process), ``"done"`` (finished or n/a by
        now) or ``"held"`` (another live run holds it; ``mine`` are pids of this run's own
        workers, whose trials are not another run's)."""
        self.db.execute("BEGIN IMMEDIATE")  # the write lock first: no two runs claim one trial
        try:
            row = self.db.execute("SELECT * FROM trials WHERE key = ?", (key,)).fetchone()
            record = self._row(row) if row else None
            if record is not None and record.status in DONE:
                outcome = "done"
            elif record is not None and record.pid not in mine and self.held_elsewhere(record):
                outcome = "held"
            else:
                self.mark_running(key)
                outcome = "claimed"
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return outcome

    def reopen(self, key: str) -> None:
        """Mark a finished trial pending again (its outputs are gone; the next claim reruns it)."""
        self.db.execute("UPDATE trials SET status='pending', pid=NULL WHERE key=?", (key,))

    def set_pid(self, key: str, pid: int) -> None:
        """The worker process that now runs a claimed trial (its liveness holds the claim)."""
        self.db.execute("UPDATE trials SET pid=? WHERE key=?", (pid, key))

    def mark_running(self, key: str, pid: int | None = None) -> None:
        self.db.execute(
            "UPDATE trials SET status='running', host=?, pid=?, started=?, attempts=attempts+1, error=NULL "
            "WHERE key=?",
            (socket.gethostname(), pid or os.getpid(), time.time(), key),
        )

    def complete(
        self,
        key: str,
        status: str,
        scores: dict | None = None,
        timings: dict | None = None,
        env: dict | None = None,
        error: str | None = None,
        outputs: dict | None = None,
    ) -> None:
        if status not in ("finished", "failed", "n/a"):
            raise ValueError(f"cannot complete a trial with status {status!r}")
        self.db.execute(
            "UPDATE trials SET status=?, scores=?, timings=?, env=?, outputs=?, error=?, finished=? "
            "WHERE key=?",
            (
                status,
                _dumps(scores),
                _dumps(timings),
                _dumps(env),
                _dumps(outputs),
                error,
                time.time(),
                key,
            ),
        )

    def counts(self) -> dict[tuple[str, str], int]:
        rows = self.db.execute(
            "SELECT kind, status, COUNT(*) FROM trials GROUP BY kind, status"
        ).fetchall()
        return {(k, s): n for k, s, n in rows}


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True)
