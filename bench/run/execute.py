"""One trial, run from a plain dict (its payload) in whatever process an executor chose: the
body of its kind (:mod:`ganbench.run.kinds`) with the environment it ran in. Nothing here
touches the store; the driver records what comes back."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import torch

from ganbench.core.errors import GanbenchError, NotApplicable
from ganbench.core.plugins import load_plugin_file
from ganbench.run.environment import environment, source_provenance
from ganbench.run.kinds import KINDS
from ganbench.run.layout import artifact_dir
from ganbench.run.numerics import prepare_cpu
from ganbench.run.trials import Trial


def trial_payload(
    trial: Trial,
    artifacts: Path,
    device: str,
    progress: bool,
    configs: dict[str, dict],
    plugins: list[str] | None,
) -> dict[str, Any]:
    """What a worker needs to run ``trial``, as plain data: its config, the config of the
    train trial it scores (``configs`` by key), absolute folders under ``artifacts``, the
    plugins to load first."""
    payload: dict[str, Any] = {
        "plugins": [str(p) for p in plugins or []],
        "kind": trial.kind,
        "config": trial.config,
        "device": device,
        "progress": progress,
        "artifact_dir": str(artifact_dir(artifacts, trial.key)),
    }
    if trial.depends_on:
        payload["train_config"] = configs[trial.depends_on]
        payload["train_artifacts"] = str(artifact_dir(artifacts, trial.depends_on))
    if trial.extra.get("evaluator_params") is not None:
        payload["evaluator_params"] = trial.extra["evaluator_params"]
    if trial.extra.get("domain_dir"):  # a pinned network, shipped with the package
        payload["domain_artifacts"] = trial.extra["domain_dir"]
    elif trial.extra.get("domain"):  # trained by a domain trial of this store
        payload["domain_artifacts"] = str(artifact_dir(artifacts, trial.extra["domain"]))
    return payload


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one trial described by a plain dict; never raises: failures come back as status 'failed'."""
    kind = KINDS[payload["kind"]]
    device = torch.device("cpu" if kind.on_cpu else payload["device"])
    env = environment(device)
    env["flush_denormal"] = prepare_cpu()
    try:
        for plugin in payload.get("plugins", []):
            load_plugin_file(plugin)
        env["code"] = source_provenance(payload["config"], payload.get("train_config"))
        return {"status": "finished", "env": env, **kind.run(payload, device)}
    except NotApplicable as exc:  # found out while evaluating (e.g. a D captum cannot explain)
        return {"status": "n/a", "env": env, "error": str(exc)}
    except GanbenchError as exc:
        return {"status": "failed", "env": env, "error": str(exc)}
    except Exception as exc:  # a bug or a library error in one trial must not stop the matrix
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        return {"status": "failed", "env": env, "error": f"{type(exc).__name__}: {exc}{where}"}
