"""Where a result came from, kept in each record's ``env``: the device, the library versions,
the git commit, the host and CPU, and the source files of the trial's components (provenance:
keys hold declared versions, not these)."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

from ganbench import __version__
from ganbench.core.registry import evaluator_registry, get_architecture, get_dataset
from ganbench.datasets.domain import DomainNetwork
from ganbench.run.keys import source_hashes


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (torch does not report it)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else None


_ENV_CACHE: dict[str, Any] = {}


def environment(device: torch.device) -> dict[str, Any]:
    """Where a result came from: device, library versions, git commit, host."""
    if not _ENV_CACHE:
        _ENV_CACHE.update(
            {
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "python": platform.python_version(),
                "host": socket.gethostname(),
                "platform": platform.platform(),
                "git_commit": _git_commit(),
                "ganbench": __version__,
                "cpu": _cpu_name(),
                "cpu_threads": torch.get_num_threads(),
            }
        )
    env = dict(_ENV_CACHE)
    env["device_type"] = device.type
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = _nvidia_driver()
    else:
        env["device"] = f"CPU ({env['cpu']}, {env['cpu_threads']} threads)"
    return env


def source_provenance(config: dict[str, Any], train_config: dict[str, Any] | None) -> dict:
    """The source files defining a trial's components, with their hashes: provenance kept in
    the record (keys hold declared versions, not these)."""
    classes: list[type] = []
    for cfg in (config, train_config or {}):
        if "architecture" in cfg:
            classes.append(get_architecture(cfg["architecture"]["name"]))
        if "dataset" in cfg:
            classes.append(get_dataset(cfg["dataset"]["name"]))
    if "evaluator" in config:
        name = config["evaluator"]["name"]
        classes.append(evaluator_registry(name).get(name))
    if "real" in config.get("source", {}):
        classes.append(get_dataset(config["source"]["real"]["dataset"]["name"]))
    if config.get("kind") == "domain" or "domain" in config:
        classes.append(DomainNetwork)
    return source_hashes(classes)
