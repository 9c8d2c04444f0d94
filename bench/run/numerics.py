"""How a trial computes: the device it runs on, the CPU's denormals, the seeded random
generators, and the ``[train]`` switches ``precision`` and ``compile``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from ganbench.core.errors import GanbenchError
from ganbench.run.config import COMPILE_MODES, PRECISIONS


def prepare_cpu() -> bool:
    """Flush denormal floats to zero: DCGAN-style N(0, 0.02) weights under Adam drift into the
    denormal range, where x86 CPUs run ~70x slower (measured: 1.02 s vs 0.015 s per step)."""
    return torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GanbenchError(
            "--device cuda was asked for but torch sees no CUDA device: use --device cpu or auto"
        )
    return torch.device(device)


def check_precision(device: torch.device, precision: str) -> None:
    """A one-line error for a precision the device cannot run."""
    if precision not in PRECISIONS:
        raise GanbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise GanbenchError(
            f"precision 'tf32' needs a CUDA device, not {device.type}: "
            "set [train] precision to 'fp32' or 'bf16', or run with --device cuda"
        )


@contextmanager
def numerics(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """The training step's numerics, restored afterwards. Everything after training (sample
    grid, generation throughput, every evaluation) runs under ``fp32``, whatever the training
    precision, so that scores from different GPUs and precisions are computed alike.

    * ``fp32``: TF32 off for matmuls and cuDNN convolutions (cuDNN's own default is on, so
      an "fp32" number on an Ampere-or-later GPU would otherwise be partly TF32);
    * ``tf32``: TF32 on for both (CUDA only: a CPU has no TF32);
    * ``bf16``: the step runs under ``torch.autocast(dtype=torch.bfloat16)`` on the CPU or
      the GPU (bf16 has fp32's exponent range, so no loss scaling is needed). The
      architectures' ``train_step`` holds forward and backward together, so the backward
      runs inside the autocast region too, in the dtypes autocast chose for the forward.

    On CUDA ``cudnn.benchmark`` is on (each convolution's fastest algorithm is picked once,
    in the warm-up window that the per-step statistics leave out).
    """
    check_precision(device, precision)
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )
    try:
        with autocast:
            yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = saved


def compile_networks(arch, mode: str) -> None:
    """``torch.compile`` G and D in place (``nn.Module.compile``: state-dict keys unchanged, so
    checkpoints load into an eager network). ``reduce-overhead`` uses CUDA graphs on CUDA,
    for the small launch-bound models. Only ``forward`` is compiled: extra entry points such
    as InfoGAN's ``forward_with_q`` stay eager."""
    if mode not in COMPILE_MODES:
        raise GanbenchError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "none":
        return
    for net in (arch.generator, arch.discriminator):
        if getattr(net, "_compiled_call_impl", None) is None:  # once per network
            net.compile(mode=mode)
