"""Checkpoints as safetensors: no pickle, so a checkpoint handed in by anyone is safe to load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganbench.core.errors import CheckpointError


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write tensors atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata)
    os.replace(tmp, path)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The sha256 of a set of tensors' names, dtypes, shapes and bytes, in name order.

    Not the file's: safetensors writes its metadata in a random order per process, so two
    files of bit-identical weights can differ in bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def load_tensors(path: Path, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt one raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{where} {path} is missing: rerun the trial that writes it (run the matrix again)"
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{where} {path} is corrupt ({str(exc).splitlines()[0]}): delete {path.parent} and rerun"
        ) from None


def save_checkpoint(arch, path: Path) -> str:
    """Write the architecture's weights atomically; returns their :func:`tensors_sha256`."""
    tensors = arch.state_tensors()
    save_tensors(tensors, path, {"architecture": arch.name, "version": arch.version})
    return tensors_sha256(tensors)


def load_checkpoint(arch, path: Path) -> None:
    """Load weights into ``arch``; a missing, corrupt or mismatched file raises :class:`CheckpointError`."""
    path = Path(path)
    tensors = load_tensors(path)
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
