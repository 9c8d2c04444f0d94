"""The ``evaluate`` kind: its config (an evaluator scoring a train trial's model or the
real-data reference) and its body, which builds the evaluator's context and checks the scores
it returns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ganbench.core.checkpoint import load_checkpoint
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import create_dataset, evaluator_registry
from ganbench.core.timing import timed
from ganbench.run.config import MatrixConfig
from ganbench.run.keys import SCHEMA_VERSION, part_of
from ganbench.run.layout import CHECKPOINT, feature_dir
from ganbench.run.numerics import numerics, seed_everything
from ganbench.run.train import build


def evaluate_config(
    cfg: MatrixConfig,
    evaluator: str,
    source: dict[str, Any],
    seed: int,
    device_type: str,
    domain: dict[str, Any] | None,
) -> dict[str, Any]:
    """An evaluate trial's config: ``evaluator`` of the matrix scoring ``source`` (a train key
    or the real-data reference), with the dataset's domain network
    (:func:`ganbench.run.domain.domain_ref`) when the evaluator reads it."""
    ev_cls = evaluator_registry(evaluator).get(evaluator)
    econfig = {
        "schema": SCHEMA_VERSION,
        "kind": "evaluate",
        "source": source,
        "evaluator": part_of(ev_cls, ev_cls.key_params(cfg.evaluator_params[evaluator])),
        "seed": seed,
        "device": device_type,
    }
    if "domain" in ev_cls.requires_dataset and domain:
        econfig["domain"] = domain
    return econfig


def load_trained(train_config: dict[str, Any], artifact_dir: Path, device: torch.device):
    dataset, arch = build(train_config)
    load_checkpoint(arch, artifact_dir / CHECKPOINT)
    return dataset, arch.to(device).eval()


def feature_cache_dir(
    config: dict[str, Any], train_artifacts: Path | None, artifact_dir: Path, device: torch.device
) -> Path:
    """The folder where the evaluations of one set of samples share their features: next to
    the trial folders, named by what the samples and features depend on (the trained
    model's trial key or the real-data reference's config, the seed, the domain network
    named by its weights' sha256, and the device type)."""
    source = train_artifacts.name if train_artifacts is not None else config["source"]
    ident = {
        "source": source,
        "seed": config["seed"],
        "domain": config.get("domain"),
        "device": device.type,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return feature_dir(artifact_dir, digest)


def run_evaluate(
    config: dict[str, Any],
    train_config: dict[str, Any] | None,
    train_artifacts: Path | None,
    artifact_dir: Path,
    device: torch.device,
    progress: bool,
    domain_artifacts: Path | None = None,
    evaluator_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score one trained model (or the real-data reference) with one evaluator, built with
    ``evaluator_params`` where the key holds other values (Evaluator.key_params)."""
    seed_everything(config["seed"])
    if "train" in config["source"]:
        dataset, model = load_trained(train_config, train_artifacts, device)
    else:
        ds = config["source"]["real"]["dataset"]
        dataset, model = create_dataset(ds["name"], **ds["params"]), None
    ev = config["evaluator"]
    params = ev["params"] if evaluator_params is None else evaluator_params
    evaluator = evaluator_registry(ev["name"]).create(ev["name"], **params)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(
        model=model,
        dataset=dataset,
        device=device,
        seed=config["seed"],
        artifact_dir=artifact_dir,
        quiet=not progress,
        domain_dir=domain_artifacts,
        domain_sha256=(config.get("domain") or {}).get("weights"),
        feature_dir=feature_cache_dir(config, train_artifacts, artifact_dir, device),
    )
    # the evaluation as the harness runs it: scores checked against their declarations,
    # reports and figures written (their writing timed with it, as when evaluators wrote them)
    with timed(device) as cost, numerics(device, "fp32"):  # TF32 off: else cuDNN's default
        scores = evaluate_and_write(evaluator, ctx)  # would make fp32 scores partly TF32
    return {
        "scores": scores,
        "timings": {"evaluate_s": cost["seconds"], "peak_mem_mb": cost["peak_mem_mb"]},
    }
