"""The generator as GAN Dissection drives it: its hidden layers, their outputs recorded by
forward hooks, and images generated with chosen units of a layer ablated or set.
"""

from __future__ import annotations

import contextlib

import torch

from ganbench.core.evaluator import EvalContext


@contextlib.contextmanager
def hooked(module: torch.nn.Module, hook):
    """``hook`` registered as a forward hook of ``module`` while the block runs."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def batches(n: int, size: int) -> list[slice]:
    """Slices of range(n) of at most ``size``, none of length 1 unless n == 1 (the rolled
    control pairs each image with another of its batch)."""
    size = max(size, 2)
    out = [slice(s, min(s + size, n)) for s in range(0, n, size)]
    if len(out) > 1 and out[-1].stop - out[-1].start == 1:
        out[-2] = slice(out[-2].start, out[-2].stop - 1)
        out[-1] = slice(out[-1].start - 1, out[-1].stop)
    return out


def generate(ctx: EvalContext, z: torch.Tensor) -> torch.Tensor:
    """Images of ``z``, clamped to [-1, 1]."""
    return ctx.model.generate(z.to(ctx.device)).clamp(-1, 1)


def run_with_record(
    ctx: EvalContext, z: torch.Tensor, modules: dict[str, torch.nn.Module]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Images of z and every module's output for them."""
    outs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in modules.items():

        def record(m, i, o, name=name):  # the first call's output, detached
            outs.setdefault(name, o.detach() if isinstance(o, torch.Tensor) else o)

        handles.append(module.register_forward_hook(record))
    try:
        x = generate(ctx, z)
    finally:
        for h in handles:
            h.remove()
    return x, outs


def hidden_layers(ctx: EvalContext, z: torch.Tensor) -> dict[str, torch.nn.Module]:
    """The generator layers with 4-D outputs that are not the generated image itself."""
    layers = ctx.model.generator_layers()
    x, outputs = run_with_record(ctx, z, layers)
    keep = {}
    for name, module in layers.items():
        out = outputs.get(name)
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            continue
        if out.shape == x.shape and torch.allclose(out.clamp(-1, 1), x, atol=1e-5):
            continue
        keep[name] = module
    if not keep:
        raise ValueError("dissection: no generator layer has 4-D feature-map outputs")
    return keep


def edited(
    ctx: EvalContext,
    z: torch.Tensor,
    module: torch.nn.Module,
    units: list[int],
    value: torch.Tensor | None = None,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images of z with ``units`` of ``module`` set to 0 (value None) or to ``value`` (U,)
    inside ``region`` (a bool (h, w) mask of the feature map)."""
    idx = torch.as_tensor(units, dtype=torch.long)

    def hook(m, i, out):
        out = out.clone()
        if value is None:
            out[:, idx.to(out.device)] = 0
        else:
            v = value[idx].to(out).view(1, -1, 1, 1)
            r = region.to(out.device).view(1, 1, *region.shape)
            sel = out[:, idx.to(out.device)]
            out[:, idx.to(out.device)] = torch.where(r, v.expand_as(sel), sel)
        return out

    with hooked(module, hook):
        return generate(ctx, z)
