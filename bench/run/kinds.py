"""The three kinds of trial, ``domain``, ``train`` and ``evaluate``, each a class holding what
is specific to it: its config builder, its body, and what the runner, the executors and the
estimates need to know of it. :data:`KINDS` looks one up by the kind string that configs,
store rows and bundles hold; the runner runs the kinds in the table's order, prerequisites
first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganbench.run.domain import domain_config, run_domain
from ganbench.run.evaluate import evaluate_config, run_evaluate
from ganbench.run.keys import canonical_json
from ganbench.run.train import run_train, train_config

# what a trial of no recorded like it is estimated to take (see ganbench.run.estimate)
FALLBACK_STEP_S = 0.1
FALLBACK_EVALUATE_S = 5.0
FALLBACK_DOMAIN_S = 30.0

CostKey = tuple[tuple, str]  # an index key of recorded costs, and the words for it


def _unversioned(part: dict[str, Any] | None) -> str:
    """A component part without its version, as a cost index key (a bump keeps its timings)."""
    part = part or {}
    return canonical_json({"name": part.get("name"), "params": part.get("params", {})})


def _path(payload: dict[str, Any], name: str) -> Path | None:
    return Path(payload[name]) if payload.get(name) else None


class TrialKind:
    """One kind of trial. ``prerequisite``: trials of later kinds wait for it, so the runner
    keeps its status for them; ``on_cpu``: it runs on the CPU whatever the matrix's device."""

    name: str
    prerequisite: bool
    on_cpu: bool = False
    config: Callable[..., dict[str, Any]]  # the builder of its config (arguments per kind)

    @staticmethod
    def run(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """The body: scores, timings and outputs, from the payload that
        :func:`ganbench.run.execute.trial_payload` built."""
        raise NotImplementedError

    @staticmethod
    def cost_keys(config: dict[str, Any], labels: dict[str, Any]) -> list[CostKey]:
        """What an estimate of its wall time is looked up by, the most specific first (the
        same for a record and for a trial to run)."""
        raise NotImplementedError

    @staticmethod
    def steps(config: dict[str, Any]) -> int | None:
        """The training steps its cost scales with; None: its cost does not scale."""
        return None

    @classmethod
    def fallback_seconds(cls, config: dict[str, Any]) -> float:
        """The estimate when no recorded trial is like it."""
        raise NotImplementedError


class Domain(TrialKind):
    """A dataset's domain network, trained for a dataset that ships none."""

    name = "domain"
    prerequisite = True
    on_cpu = True  # every device scores with the same network
    config = staticmethod(domain_config)

    @staticmethod
    def run(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return run_domain(payload["config"], Path(payload["artifact_dir"]), payload["progress"])

    @staticmethod
    def cost_keys(config: dict[str, Any], labels: dict[str, Any]) -> list[CostKey]:
        return [(("domain", (config.get("dataset") or {}).get("name")), "same dataset")]

    @classmethod
    def fallback_seconds(cls, config: dict[str, Any]) -> float:
        return FALLBACK_DOMAIN_S


class Train(TrialKind):
    """An architecture trained on a dataset for a budget of steps."""

    name = "train"
    prerequisite = True
    config = staticmethod(train_config)

    @staticmethod
    def run(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return run_train(
            payload["config"], Path(payload["artifact_dir"]), device, payload["progress"]
        )

    @staticmethod
    def cost_keys(config: dict[str, Any], labels: dict[str, Any]) -> list[CostKey]:
        arch, data = config.get("architecture") or {}, config.get("dataset") or {}
        batch, device = (config.get("budget") or {}).get("batch_size"), config.get("device")
        return [
            (
                ("train", "exact", _unversioned(arch), _unversioned(data), batch, device),
                "same config",
            ),
            (
                ("train", "names", arch.get("name"), data.get("name"), device),
                "same architecture and dataset",
            ),
            (("train", "arch", arch.get("name")), "same architecture"),
        ]

    @staticmethod
    def steps(config: dict[str, Any]) -> int:
        return int((config.get("budget") or {}).get("steps", 0))

    @classmethod
    def fallback_seconds(cls, config: dict[str, Any]) -> float:
        return FALLBACK_STEP_S * max(cls.steps(config), 10)


class Evaluate(TrialKind):
    """An evaluator scoring a trained model or the real-data reference."""

    name = "evaluate"
    prerequisite = False
    config = staticmethod(evaluate_config)

    @staticmethod
    def run(payload: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return run_evaluate(
            payload["config"],
            payload.get("train_config"),
            _path(payload, "train_artifacts"),
            Path(payload["artifact_dir"]),
            device,
            payload["progress"],
            _path(payload, "domain_artifacts"),
            payload.get("evaluator_params"),
        )

    @staticmethod
    def cost_keys(config: dict[str, Any], labels: dict[str, Any]) -> list[CostKey]:
        ev = _unversioned(config.get("evaluator"))
        who = (labels.get("architecture"), labels.get("reference"))
        dataset, device = labels.get("dataset"), config.get("device")
        return [
            (("evaluate", "exact", ev, who, dataset, device), "same evaluation"),
            (("evaluate", "dataset", ev, dataset, device), "same evaluator on the dataset"),
            (("evaluate", "name", (config.get("evaluator") or {}).get("name")), "same evaluator"),
        ]

    @classmethod
    def fallback_seconds(cls, config: dict[str, Any]) -> float:
        return FALLBACK_EVALUATE_S


KINDS: dict[str, type[TrialKind]] = {kind.name: kind for kind in (Domain, Train, Evaluate)}
