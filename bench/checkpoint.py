"""Checkpoints as safetensors: no pickle, so a checkpoint handed in by anyone is safe to load."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganbench.errors import CheckpointError


def save_checkpoint(arch, path: Path) -> None:
    """Write the architecture's weights atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file(
        arch.state_tensors(),
        str(tmp),
        metadata={"architecture": arch.name, "version": arch.version},
    )
    os.replace(tmp, path)


def load_checkpoint(arch, path: Path) -> None:
    """Load weights into ``arch``; a missing, corrupt or mismatched file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} is missing: rerun its train trial (delete its row or run again)"
        )
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt ({str(exc).splitlines()[0]}): delete {path.parent} and rerun"
        ) from None
    try:
        arch.load_state_tensors(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not fit architecture {arch.name!r} ({first[0] if first else exc}): "
            "was it written by another version or config?"
        ) from None


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
