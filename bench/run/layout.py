"""The layout of a store's folder (``runs/`` by default): the one module that knows its folder
and file names; everything in the run stage asks it.

::

    runs/
      ganbench.sqlite                 the store (store.py), one row per trial
      artifacts/
        <key>/                        one trial's files
          model.safetensors           a train trial's checkpoint
          samples.png                 its sample grid
          losses.csv                  its loss log, one row per logging window
          ...                         a domain trial's network, an evaluator's figures
        <key>.partial-<pid>-<random>/ a train trial's files while it is being written
        _features/<digest>/           features shared by the evaluations of one set of samples

The store file can live anywhere (``--store``); the artifacts always sit beside it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ganbench.run.processes import pid_alive

RUNS = Path("runs")
STORE = "ganbench.sqlite"
DEFAULT_STORE = RUNS / STORE
ARTIFACTS = "artifacts"
DEFAULT_ARTIFACTS = RUNS / ARTIFACTS  # where code outside a matrix caches domain networks
CHECKPOINT = "model.safetensors"
SAMPLE_GRID = "samples.png"
LOSS_LOG = "losses.csv"
FEATURES = "_features"
PARTIAL = ".partial"


def artifacts_root(store_path: str | Path) -> Path:
    """The folder of every trial's artifacts: ``artifacts/`` beside the store file."""
    return Path(store_path).parent / ARTIFACTS


def artifact_dir(artifacts: Path, key: str) -> Path:
    """One trial's folder under ``artifacts``: named by its key."""
    return artifacts / key


def feature_dir(artifact_dir: Path, digest: str) -> Path:
    """The feature cache of one set of samples, beside the trial folders, named by ``digest``
    (what the samples and features depend on: ``evaluate.feature_cache_dir``)."""
    return artifact_dir.parent / FEATURES / digest


def partial_dir(artifact_dir: Path) -> Path:
    """A fresh folder beside ``artifact_dir`` for one attempt to write into before it is moved
    into place: ``<key>.partial-<pid>-<random>``, so two attempts never share one (two runs
    on a store had; one deleted the other's ``losses.csv``). Partial folders of processes that
    are gone (a killed run) are removed."""
    artifact_dir.parent.mkdir(parents=True, exist_ok=True)
    for old in artifact_dir.parent.glob(artifact_dir.name + PARTIAL + "*"):
        pid = old.name.rsplit(PARTIAL, 1)[1].lstrip("-").split("-")[0]
        if not pid.isdigit() or not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = artifact_dir.with_name(
        f"{artifact_dir.name}{PARTIAL}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    tmp.mkdir()
    return tmp
