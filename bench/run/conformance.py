"""The conformance suite an architecture must pass: ``ganbench check NAME_OR_FILE``.

Each check builds the architecture at its smallest width on the CPU and either returns a
one-line description of what it found or raises :class:`CheckFailed`; any other exception
is that check's failure too, reported with the line of the architecture's code it came
from. Every check carries the fix to print when it fails. The registry-parametrised
contract tests (``tests/test_architecture_contract.py``) run these same checks, so the
rules are written once.

This module holds the table of checks, each with the fix it prints, and runs them; the checks
themselves are :mod:`ganbench.run.conformance_checks` (what every architecture must do) and
:mod:`ganbench.run.conformance_capabilities` (one per capability it may declare).
"""

from __future__ import annotations

import inspect
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganbench.core.registry import get_architecture
from ganbench.run.conformance_capabilities import (
    check_attention,
    check_codes,
    check_coordinates,
    check_filter_groups,
    check_styles,
)
from ganbench.run.conformance_checks import (
    CheckFailed,
    check_builds,
    check_deeplift,
    check_determinism,
    check_discriminator_modules,
    check_generate,
    check_latent_prior,
    check_layers,
    check_round_trip,
    check_training,
)


@dataclass
class CheckResult:
    """One check's outcome on one architecture: what it found, and the fix when it failed."""

    check: str
    passed: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0


@dataclass
class Check:
    """A named check, the fix it prints when it fails, and the capability it needs (if any)."""

    name: str
    run: Callable[[str], str]
    fix: str
    capability: str | None = None  # run only when the architecture declares it


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
