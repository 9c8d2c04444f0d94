"""The conformance suite an architecture must pass: ``ganbench check NAME_OR_FILE``.

Each check builds the architecture at its smallest width on the CPU and either returns a
one-line description of what it found or raises :class:`CheckFailed`; any other exception
is that check's failure too, reported with the line of the architecture's code it came
from. Every check carries the fix to print when it fails. The registry-parametrised
contract tests (``tests/test_architecture_contract.py``) run these same checks, so the
rules are written once.
"""

from __future__ import annotations

import inspect
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class CheckResult:
    check: str
    passed: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0


@dataclass
class Check:
    name: str
    run: Callable[[str], str]
    fix: str
    capability: str | None = None  # run only when the architecture declares it


def small(name: str, spec: DatasetSpec = SPECS[0], seed: int = 0):
    """The architecture at its smallest width (8, where it has a ``width``), for speed."""
    torch.manual_seed(seed)
    params = {"width": 8} if "width" in get_architecture(name).defaults else {}
    return create_architecture(name, spec, **params)


def _images(spec: DatasetSpec, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, spec.channels, spec.image_size, spec.image_size, generator=g) * 2 - 1


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- the checks ---------------------------------------------------------------------------
def check_builds(name: str) -> str:
    for spec in SPECS:
        small(name, spec)
    try:
        create_architecture(name, SPECS[0], no_such_knob=1)
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        _expect(
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
        _expect(tuple(x.shape) == want, f"generate gave shape {tuple(x.shape)}, expected {want}")
        _expect(bool(torch.isfinite(x).all()), f"generate gave non-finite values at {spec.name}")
        lo, hi = float(x.min()), float(x.max())
        _expect(lo >= -1 and hi <= 1, f"generate gave values in [{lo:.3g}, {hi:.3g}], not [-1, 1]")
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
    _expect(
        tuple(mapped.shape) == tuple(own.shape),
        f"latent_from_normal gave shape {tuple(mapped.shape)}, sample_latent {tuple(own.shape)}",
    )
    worst, where = max(
        (ks_2samp(own[:, j].numpy(), mapped[:, j].numpy(), method="asymp").statistic, j)
        for j in range(own.shape[1])
    )
    _expect(
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
    _expect(
        set(states[0]) == set(states[1]) and not differ,
        f"the same seed built different weights: {', '.join(differ[:3]) or 'other keys'}",
    )
    _expect(torch.equal(outs[0], outs[1]), "the same seed gave different samples")
    _expect(not torch.equal(outs[0], outs[2]), "different seeds gave identical samples")
    return "same seed, same weights and samples; another seed, other samples"


def check_round_trip(name: str) -> str:
    spec = SPECS[0]
    a = small(name, spec, seed=0)
    a.train_step(_images(spec, 8))  # move weights and BatchNorm statistics off their init
    a.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_checkpoint(a, path)
        b = small(name, spec, seed=1)
        load_checkpoint(b, path)
    b.eval()
    z = a.sample_latent(4, torch.Generator().manual_seed(0))
    x = _images(spec, 4, seed=1)
    with torch.no_grad():
        _expect(torch.equal(a.generate(z), b.generate(z)), "generate differs after a reload")
        _expect(
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
    _expect(isinstance(losses, dict) and bool(losses), "train_step must return a dict of losses")
    for key, value in losses.items():
        _expect(
            isinstance(value, torch.Tensor) and value.dim() == 0,
            f"loss {key!r} is not a scalar tensor",
        )
        _expect(not value.requires_grad, f"loss {key!r} is not detached")
        _expect(bool(torch.isfinite(value)), f"loss {key!r} is {float(value)} at step {step}")


def check_training(name: str) -> str:
    spec = SPECS[0]
    arch = small(name, spec)
    before = _trainable(arch)
    for step in range(3):
        losses = arch.train_step(_images(spec, 8, seed=step))
        _check_losses(losses, step + 1)
    after = _trainable(arch)
    moved = {
        net: sum(not torch.equal(v, after[net][k]) for k, v in params.items())
        for net, params in before.items()
    }
    still = sorted(net for net in ("generator", "discriminator") if not moved.get(net))
    _expect(not still, f"three training steps changed no weight of the {' or the '.join(still)}")
    big = small(name, SPECS[1])  # one step at 64x64x3: nothing sized for one dataset only
    _check_losses(big.train_step(_images(SPECS[1], 8)), 1)
    total = sum(len(p) for p in before.values())
    return (
        f"3 steps: finite detached scalar losses ({', '.join(losses)}); "
        f"{sum(moved.values())}/{total} weight tensors move; trains at 64x64x3 too"
    )


def check_layers(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        layers = arch.generator_layers()
        _expect(bool(layers), "generator_layers() names no layer")
        notmod = sorted(n for n, m in layers.items() if not isinstance(m, torch.nn.Module))
        _expect(not notmod, f"generator_layers() entries that are not modules: {notmod}")
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
        _expect(not missing, f"layers never run while generating: {', '.join(missing)}")
        bad = [
            n
            for n, o in seen.items()
            if not (torch.is_tensor(o) and o.dim() == 4 and o.shape[0] == 2)
        ]
        _expect(
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
                logits = arch.discriminator_logits(_images(spec, 3))
        finally:
            for h in hooks:
                h.remove()
        _expect(
            tuple(logits.shape) == (3,),
            f"discriminator_logits gave {tuple(logits.shape)} at {spec.name}, not (3,)",
        )
        _expect(bool(torch.isfinite(logits).all()), f"non-finite logits at {spec.name}")
        reused = sorted(n for n, c in calls.items() if c > 1)
        _expect(not reused, f"modules called more than once in one forward: {', '.join(reused)}")
    return (
        f"one logit per image at 32x32x1 and 64x64x3; {len(calls)} leaf modules, each called once"
    )


def check_deeplift(name: str) -> str:
    from captum.attr import DeepLift

    arch = small(name)
    arch.train_step(_images(SPECS[0], 16))  # BatchNorm statistics off their init
    arch.eval()
    x = _images(SPECS[0], 4, seed=3)
    baseline = torch.zeros_like(x)
    attr, delta = DeepLift(arch.discriminator).attribute(
        x, baselines=baseline, return_convergence_delta=True
    )
    _expect(tuple(attr.shape) == tuple(x.shape), f"attributions of shape {tuple(attr.shape)}")
    _expect(bool(torch.isfinite(attr).all()), "attributions are not finite")
    with torch.no_grad():
        gap = arch.discriminator(x).reshape(-1) - arch.discriminator(baseline).reshape(-1)
    # 10%: attention products and minibatch std have no DeepLIFT rule, so completeness holds
    # only roughly there (exactly for DCGAN-like discriminators)
    worst = float((delta.abs() / (gap.abs() + 1e-3)).max())
    _expect(
        bool((delta.abs() <= 0.1 * gap.abs() + 1e-3).all()),
        f"DeepLIFT attributions miss D(x) - D(x0) by up to {worst:.0%} (allowed 10%)",
    )
    return f"captum DeepLift: complete within {worst:.1%} of D(x) - D(x0)"


def check_attention(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        maps = arch.attention_maps(arch.sample_latent(2, torch.Generator().manual_seed(0)))
        _expect(
            isinstance(maps, dict) and set(maps) >= {"generator", "discriminator"},
            f"attention_maps keys {sorted(maps) if isinstance(maps, dict) else type(maps)}",
        )
        for where in ("generator", "discriminator"):
            m = maps[where]
            _expect(
                torch.is_tensor(m) and m.dim() == 5 and m.shape[0] == 2,
                f"{where} maps of shape {tuple(getattr(m, 'shape', ()))}, not (B, Hq, Wq, Hk, Wk)",
            )
            _expect(bool(torch.isfinite(m).all()), f"{where} attention is not finite")
            sums = m.flatten(3).sum(-1)
            _expect(bool((m >= 0).all()), f"{where} attention has negative weights")
            _expect(
                torch.allclose(sums, torch.ones_like(sums), atol=1e-4),
                f"{where} attention weights sum to {float(sums.min()):.3g}..{float(sums.max()):.3g}, not 1",
            )
    return "attention_maps: distributions over keys for every query, in G and D, at both sizes"


def check_codes(name: str) -> str:
    arch = small(name).eval()
    spec = arch.code_spec()
    _expect(
        spec.latent_dim == arch.latent_dim,
        f"code_spec() adds up to {spec.latent_dim} latent dims, latent_dim is {arch.latent_dim}",
    )
    z = arch.sample_latent(4, torch.Generator().manual_seed(0), category=1)
    again = arch.sample_latent(4, torch.Generator().manual_seed(0), category=1)
    _expect(tuple(z.shape) == (4, arch.latent_dim), f"sample_latent gave shape {tuple(z.shape)}")
    _expect(torch.equal(z, again), "sample_latent(n, generator) is not reproducible")
    _, cat, _ = arch.split_latent(z)
    _expect(bool((cat == 1).all()), "sample_latent(category=1) did not fix the categorical code")
    with torch.no_grad():
        logits, cont = arch.predict_codes(arch.generate(z))
    _expect(
        tuple(logits.shape) == (4, spec.categories), f"Q's logits of shape {tuple(logits.shape)}"
    )
    _expect(
        tuple(cont.shape) == (4, spec.continuous),
        f"Q's continuous codes of shape {tuple(cont.shape)}",
    )
    _expect(
        bool(torch.isfinite(logits).all() and torch.isfinite(cont).all()),
        "predict_codes gave non-finite values",
    )
    return f"code_spec {spec.categories} categories + {spec.continuous} continuous; codes fixable; Q reads them"


def check_styles(name: str) -> str:
    arch = small(name).eval()
    want = (2, arch.channels, arch.image_size, arch.image_size)
    with torch.no_grad():
        z = arch.sample_latent(2, torch.Generator().manual_seed(0))
        w = arch.mapping(z)
        _expect(w.dim() == 2 and w.shape[0] == 2, f"mapping(z) gave w of shape {tuple(w.shape)}")
        images = arch.generate_from_w(w)
        num_ws = getattr(arch, "num_ws", None)
        if num_ws is not None and hasattr(arch, "synthesis"):
            ws = w.unsqueeze(1).expand(-1, num_ws, -1)
            from_ws = arch.synthesis(ws)
            _expect(
                torch.allclose(from_ws, images, atol=1e-5),
                "synthesis(ws) with w in every layer differs from generate_from_w(w)",
            )
        styles = arch.styles(w)
    _expect(tuple(images.shape) == want, f"generate_from_w gave {tuple(images.shape)}, not {want}")
    _expect(
        bool(torch.isfinite(images).all()) and float(images.abs().max()) <= 1,
        "generate_from_w gave values outside [-1, 1]",
    )
    _expect(isinstance(styles, dict) and bool(styles), "styles(w) gave no per-layer styles")
    bad = sorted(k for k, v in styles.items() if not (torch.is_tensor(v) and v.shape[0] == 2))
    _expect(not bad, f"styles without a batch dimension: {', '.join(bad[:3])}")
    ws_note = f"synthesis from {num_ws} ws, " if num_ws is not None else ""
    return (
        f"mapping -> w {tuple(w.shape[1:])}, {ws_note}images from w, {len(styles)} per-layer styles"
    )


def check_coordinates(name: str) -> str:
    arch = small(name).eval()
    coords = arch.micro_coordinates()
    _expect(
        torch.is_tensor(coords) and coords.dim() == 2 and len(coords) > 0,
        f"micro_coordinates() of shape {tuple(getattr(coords, 'shape', ()))}, not (P, 2)",
    )
    with torch.no_grad():
        z = arch.sample_latent(2, torch.Generator().manual_seed(0))
        patches = [arch.generate_patch(z, c) for c in coords]
    shapes = {tuple(p.shape) for p in patches}
    _expect(len(shapes) == 1, f"patches of different shapes: {sorted(shapes)}")
    n, c, h, w = patches[0].shape
    _expect(
        (n, c) == (2, arch.channels) and h == w,
        f"generate_patch gave {tuple(patches[0].shape)}, not (2, {arch.channels}, s, s)",
    )
    _expect(
        all(bool(torch.isfinite(p).all()) and float(p.abs().max()) <= 1 for p in patches),
        "generate_patch gave values outside [-1, 1]",
    )
    if not hasattr(arch, "generate_full"):
        return f"{len(coords)} micro patches of {h}x{w} (no generate_full to compare with)"
    side = int(round(len(coords) ** 0.5))
    _expect(
        side * side == len(coords), f"{len(coords)} micro coordinates do not make a square grid"
    )
    with torch.no_grad():
        full = arch.generate_full(z)
    rows = [torch.cat(patches[r * side : (r + 1) * side], dim=3) for r in range(side)]
    stitched = torch.cat(rows, dim=2)
    _expect(
        stitched.shape == full.shape,
        f"stitched patches {tuple(stitched.shape)} vs image {tuple(full.shape)}",
    )
    gap = float((stitched - full).abs().max())
    # patch by patch vs. one batched draw: equal up to floating-point reassociation
    _expect(gap <= 1e-4, f"the full image differs from its stitched micro patches by {gap:.3g}")
    return f"{len(coords)} micro patches, drawn one coordinate at a time, stitch into the full image (max gap {gap:.1g})"


def check_filter_groups(name: str) -> str:
    arch = small(name).eval()
    part = arch.partition()
    _expect(
        torch.is_tensor(part)
        and part.dim() == 1
        and len(part) > 0
        and not part.is_floating_point(),
        f"partition() gave {tuple(getattr(part, 'shape', ()))}, not (M,) integer group ids",
    )
    groups = arch.params.get("groups", int(part.max()) + 1)
    _expect(
        int(part.min()) >= 0 and int(part.max()) < groups,
        f"partition() ids span {int(part.min())}..{int(part.max())}, not [0, {groups})",
    )
    with torch.no_grad():
        z1 = arch.sample_latent(2, torch.Generator().manual_seed(0))
        z2 = arch.sample_latent(2, torch.Generator().manual_seed(1))
        if hasattr(arch, "filter_maps"):  # the partition must name every filter of the layer
            m = arch.filter_maps(z1).shape[1]
            _expect(len(part) == m, f"partition() covers {len(part)} filters of the layer's {m}")
        a, b = arch.swap_concept(z1, z2, int(part[0]))
        want = tuple(arch.generate(z1).shape)
    _expect(
        tuple(a.shape) == tuple(b.shape) == want,
        f"swap_concept images of shapes {tuple(a.shape)}, {tuple(b.shape)}, not {want}",
    )
    _expect(
        float(a.abs().max()) <= 1 and float(b.abs().max()) <= 1,
        "swap_concept gave values outside [-1, 1]",
    )
    return (
        f"partition of all {len(part)} filters into {len(part.unique())} groups; concept swap works"
    )


CHECKS = (
    Check(
        "builds",
        check_builds,
        "build() must create the networks from self.params; declare every knob in `defaults`",
    ),
    Check(
        "generate",
        check_generate,
        "generate(z) must return (n, channels, image_size, image_size) in [-1, 1]: end G with Tanh, size it from self.spec",
    ),
    Check(
        "latent prior",
        check_latent_prior,
        "with a prior other than N(0, 1), provide latent_from_normal(noise) mapping N(0, 1) noise onto it (e.g. 2*Phi(x)-1 for U(-1, 1))",
    ),
    Check(
        "determinism",
        check_determinism,
        "draw every random number from torch's seeded generators (no numpy/random, no time-based seeds)",
    ),
    Check(
        "round trip",
        check_round_trip,
        "keep every weight and buffer in the modules that networks() returns, so the safetensors checkpoint holds them",
    ),
    Check(
        "training",
        check_training,
        "train_step(real) must update the networks and return {name: loss.detach()} of finite scalars",
    ),
    Check(
        "layers",
        check_layers,
        "generator_layers() must name modules that run in generate(z) and output (batch, C, H, W) maps",
    ),
    Check(
        "discriminator modules",
        check_discriminator_modules,
        "give every activation its own nn.Module, used once (no functional F.relu, no module called twice); discriminator_logits returns (n,)",
    ),
    Check(
        "captum deeplift",
        check_deeplift,
        "use module activations used once; clone a tensor that feeds both a non-linearity and a residual shortcut",
    ),
    Check(
        "capability attention",
        check_attention,
        "attention_maps(z) must return {'generator', 'discriminator'}: (B, Hq, Wq, Hk, Wk) softmax weights over keys",
        "attention",
    ),
    Check(
        "capability codes",
        check_codes,
        "provide code_spec(), sample_latent(n, generator, category=...), split_latent(z) and predict_codes(images)",
        "codes",
    ),
    Check(
        "capability styles",
        check_styles,
        "provide mapping(z) -> w, generate_from_w(w) and styles(w) -> {layer: style}",
        "styles",
    ),
    Check(
        "capability coordinates",
        check_coordinates,
        "provide micro_coordinates(), generate_patch(z, coord) and generate_full(z) equal to the stitched patches",
        "coordinates",
    ),
    Check(
        "capability filter_groups",
        check_filter_groups,
        "provide partition() -> (M,) group ids and swap_concept(z1, z2, group) -> two images",
        "filter_groups",
    ),
)
KNOWN_CAPABILITIES = {c.capability for c in CHECKS if c.capability} | {"layers"}


def _where(exc: BaseException, cls: type) -> str:
    """`` (file.py:N)``: the line of the architecture's own code the exception came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    try:
        own = inspect.getsourcefile(cls)
    except TypeError:
        own = None
    mine = [f for f in frames if own and Path(f.filename) == Path(own)]
    frame = (mine or frames or [None])[-1]
    return f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""


def run_check(name: str, check: Check) -> CheckResult:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum's notes on hooks and grads, not findings
            detail = check.run(name)
        passed, fix = True, ""
    except CheckFailed as exc:
        detail, passed, fix = str(exc), False, check.fix
    except Exception as exc:  # noqa: BLE001 - a crash in the architecture is a failed check
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {first}{_where(exc, get_architecture(name))}"
        passed, fix = False, check.fix
    return CheckResult(check.name, passed, detail, fix, time.perf_counter() - start)


def checks_for(name: str) -> list[Check]:
    """The checks that apply to ``name``: all general ones, and one per declared capability."""
    caps = get_architecture(name).capabilities
    return [c for c in CHECKS if c.capability is None or c.capability in caps]


def run_checks(name: str) -> list[CheckResult]:
    results = [run_check(name, c) for c in checks_for(name)]
    for cap in sorted(get_architecture(name).capabilities - KNOWN_CAPABILITIES):
        results.append(
            CheckResult(f"capability {cap}", True, "declared; ganbench has no check for it yet")
        )
    return results
