"""The general checks of the conformance suite (:mod:`ganbench.run.conformance`): what every
architecture must do (build, generate, train, save and load, expose its layers, suit captum),
with the helpers every check uses: the two small specs, :func:`small`, :func:`images` and
:func:`expect`, which raises :class:`CheckFailed` with what was found."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import torch

from ganbench.core.checkpoint import load_checkpoint, save_checkpoint
from ganbench.core.registry import create_architecture, get_architecture
from ganbench.datasets.base import DatasetSpec

SPECS = (
    DatasetSpec(name="grey32", version="test", image_size=32, channels=1),
    DatasetSpec(name="rgb64", version="test", image_size=64, channels=3),
)


class CheckFailed(Exception):
    """A conformance check found something wrong; the message says what."""


def small(name: str, spec: DatasetSpec = SPECS[0], seed: int = 0):
    """The architecture at its smallest width (8, where it has a ``width``), for speed."""
    torch.manual_seed(seed)
    params = {"width": 8} if "width" in get_architecture(name).defaults else {}
    return create_architecture(name, spec, **params)


def images(spec: DatasetSpec, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded uniform images in [-1, 1] of the spec's shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, spec.channels, spec.image_size, spec.image_size, generator=g) * 2 - 1


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def check_builds(name: str) -> str:
    for spec in SPECS:
        small(name, spec)
    try:
        create_architecture(name, SPECS[0], no_such_knob=1)
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        expect(
            "unknown key 'no_such_knob'" in str(exc),
            f"an unknown parameter gave an unclear error: {type(exc).__name__}: {exc}",
        )
    else:
        raise CheckFailed("an unknown parameter 'no_such_knob' was accepted silently")
    return "builds at 32x32x1 and 64x64x3; rejects an unknown parameter"


def check_generate(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        with torch.no_grad():
            x = arch.generate(arch.sample_latent(5, torch.Generator().manual_seed(0)))
        want = (5, spec.channels, spec.image_size, spec.image_size)
        expect(tuple(x.shape) == want, f"generate gave shape {tuple(x.shape)}, expected {want}")
        expect(bool(torch.isfinite(x).all()), f"generate gave non-finite values at {spec.name}")
        lo, hi = float(x.min()), float(x.max())
        expect(lo >= -1 and hi <= 1, f"generate gave values in [{lo:.3g}, {hi:.3g}], not [-1, 1]")
    return "(n, C, S, S) images in [-1, 1] at 32x32x1 and 64x64x3"


def check_latent_prior(name: str) -> str:
    """latent_from_normal(N(0, 1) noise) must be distributed as sample_latent: per latent
    coordinate, the two-sample Kolmogorov-Smirnov distance of 4,000 draws each stays under
    0.06 (the largest of ~100 coordinates under the null is about 0.045)."""
    from scipy.stats import ks_2samp

    arch = small(name)
    n = 4000
    own = arch.sample_latent(n, torch.Generator().manual_seed(0)).cpu()
    noise = torch.randn(n, arch.latent_dim, generator=torch.Generator().manual_seed(1))
    mapped = arch.latent_from_normal(noise).cpu()
    expect(
        tuple(mapped.shape) == tuple(own.shape),
        f"latent_from_normal gave shape {tuple(mapped.shape)}, sample_latent {tuple(own.shape)}",
    )
    worst, where = max(
        (ks_2samp(own[:, j].numpy(), mapped[:, j].numpy(), method="asymp").statistic, j)
        for j in range(own.shape[1])
    )
    expect(
        worst < 0.06,
        f"latent coordinate {where}: latent_from_normal's draws differ from sample_latent's "
        f"(KS distance {worst:.3f})",
    )
    return f"latent_from_normal matches sample_latent (largest KS distance {worst:.3f})"


def check_determinism(name: str) -> str:
    spec = SPECS[0]
    outs, states = [], []
    for seed in (3, 3, 4):
        arch = small(name, spec, seed=seed).eval()
        states.append(arch.state_tensors())
        with torch.no_grad():
            outs.append(arch.generate(arch.sample_latent(4, torch.Generator().manual_seed(1))))
    differ = sorted(k for k in states[0] if not torch.equal(states[0][k], states[1].get(k)))
    expect(
        set(states[0]) == set(states[1]) and not differ,
        f"the same seed built different weights: {', '.join(differ[:3]) or 'other keys'}",
    )
    expect(torch.equal(outs[0], outs[1]), "the same seed gave different samples")
    expect(not torch.equal(outs[0], outs[2]), "different seeds gave identical samples")
    return "same seed, same weights and samples; another seed, other samples"


def check_round_trip(name: str) -> str:
    spec = SPECS[0]
    a = small(name, spec, seed=0)
    a.train_step(images(spec, 8))  # move weights and BatchNorm statistics off their init
    a.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_checkpoint(a, path)
        b = small(name, spec, seed=1)
        load_checkpoint(b, path)
    b.eval()
    z = a.sample_latent(4, torch.Generator().manual_seed(0))
    x = images(spec, 4, seed=1)
    with torch.no_grad():
        expect(torch.equal(a.generate(z), b.generate(z)), "generate differs after a reload")
        expect(
            torch.equal(a.discriminator_logits(x), b.discriminator_logits(x)),
            "discriminator_logits differ after a reload",
        )
    return "save, load into a differently seeded copy: identical G and D outputs"


def _trainable(arch) -> dict[str, dict[str, torch.Tensor]]:
    """Each network's trainable parameters, copied."""
    return {
        net: {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}
        for net, module in arch.networks().items()
    }


def _check_losses(losses, step: int) -> None:
    expect(isinstance(losses, dict) and bool(losses), "train_step must return a dict of losses")
    for key, value in losses.items():
        expect(
            isinstance(value, torch.Tensor) and value.dim() == 0,
            f"loss {key!r} is not a scalar tensor",
        )
        expect(not value.requires_grad, f"loss {key!r} is not detached")
        expect(bool(torch.isfinite(value)), f"loss {key!r} is {float(value)} at step {step}")


def check_training(name: str) -> str:
    spec = SPECS[0]
    arch = small(name, spec)
    before = _trainable(arch)
    for step in range(3):
        losses = arch.train_step(images(spec, 8, seed=step))
        _check_losses(losses, step + 1)
    after = _trainable(arch)
    moved = {
        net: sum(not torch.equal(v, after[net][k]) for k, v in params.items())
        for net, params in before.items()
    }
    still = sorted(net for net in ("generator", "discriminator") if not moved.get(net))
    expect(not still, f"three training steps changed no weight of the {' or the '.join(still)}")
    big = small(name, SPECS[1])  # one step at 64x64x3: nothing sized for one dataset only
    _check_losses(big.train_step(images(SPECS[1], 8)), 1)
    total = sum(len(p) for p in before.values())
    return (
        f"3 steps: finite detached scalar losses ({', '.join(losses)}); "
        f"{sum(moved.values())}/{total} weight tensors move; trains at 64x64x3 too"
    )


def check_layers(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        layers = arch.generator_layers()
        expect(bool(layers), "generator_layers() names no layer")
        notmod = sorted(n for n, m in layers.items() if not isinstance(m, torch.nn.Module))
        expect(not notmod, f"generator_layers() entries that are not modules: {notmod}")
        seen: dict[str, torch.Tensor] = {}
        hooks = [
            m.register_forward_hook(lambda m, i, o, n=n, seen=seen: seen.__setitem__(n, o))
            for n, m in layers.items()
        ]
        try:
            with torch.no_grad():
                arch.generate(arch.sample_latent(2))
        finally:
            for h in hooks:
                h.remove()
        missing = sorted(set(layers) - set(seen))
        expect(not missing, f"layers never run while generating: {', '.join(missing)}")
        bad = [
            n
            for n, o in seen.items()
            if not (torch.is_tensor(o) and o.dim() == 4 and o.shape[0] == 2)
        ]
        expect(
            not bad,
            f"layers whose output is not a (batch, C, H, W) map at {spec.name}: {', '.join(bad)}",
        )
    return f"{len(layers)} hookable layers give (batch, C, H, W) maps at 32x32x1 and 64x64x3"


def check_discriminator_modules(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        calls: Counter = Counter()
        hooks = [
            m.register_forward_hook(lambda m, i, o, n=n, calls=calls: calls.update([n]))
            for n, m in arch.discriminator.named_modules()
            if not list(m.children())
        ]
        try:
            with torch.no_grad():
                logits = arch.discriminator_logits(images(spec, 3))
        finally:
            for h in hooks:
                h.remove()
        expect(
            tuple(logits.shape) == (3,),
            f"discriminator_logits gave {tuple(logits.shape)} at {spec.name}, not (3,)",
        )
        expect(bool(torch.isfinite(logits).all()), f"non-finite logits at {spec.name}")
        reused = sorted(n for n, c in calls.items() if c > 1)
        expect(not reused, f"modules called more than once in one forward: {', '.join(reused)}")
    return (
        f"one logit per image at 32x32x1 and 64x64x3; {len(calls)} leaf modules, each called once"
    )


def check_deeplift(name: str) -> str:
    from captum.attr import DeepLift

    arch = small(name)
    arch.train_step(images(SPECS[0], 16))  # BatchNorm statistics off their init
    arch.eval()
    x = images(SPECS[0], 4, seed=3)
    baseline = torch.zeros_like(x)
    attr, delta = DeepLift(arch.discriminator).attribute(
        x, baselines=baseline, return_convergence_delta=True
    )
    expect(tuple(attr.shape) == tuple(x.shape), f"attributions of shape {tuple(attr.shape)}")
    expect(bool(torch.isfinite(attr).all()), "attributions are not finite")
    with torch.no_grad():
        gap = arch.discriminator(x).reshape(-1) - arch.discriminator(baseline).reshape(-1)
    # 10%: attention products and minibatch std have no DeepLIFT rule, so completeness holds
    # only roughly there (exactly for DCGAN-like discriminators)
    worst = float((delta.abs() / (gap.abs() + 1e-3)).max())
    expect(
        bool((delta.abs() <= 0.1 * gap.abs() + 1e-3).all()),
        f"DeepLIFT attributions miss D(x) - D(x0) by up to {worst:.0%} (allowed 10%)",
    )
    return f"captum DeepLift: complete within {worst:.1%} of D(x) - D(x0)"
