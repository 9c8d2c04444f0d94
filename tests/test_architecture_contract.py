"""The contract every registered architecture passes, parametrised over the registry (timm-style).

The checks themselves live in ``ganbench.run.conformance`` (what ``ganbench check`` runs for a
submitter), so the rules are written once: shapes and range at 32x32 grey and 64x64 RGB,
determinism by seed, the safetensors round trip, finite losses, hookable generator layers,
one logit per image with each D module used once, captum DeepLIFT completeness within 10%,
an unknown parameter rejected, and every declared capability provided.
"""

from __future__ import annotations

import pytest

from ganbench.core.registry import get_architecture, list_architectures
from ganbench.run.conformance import CHECKS, run_check

CASES = [
    pytest.param(name, check, id=f"{name}-{check.name.replace(' ', '_')}")
    for name in list_architectures()
    for check in CHECKS
    if check.capability is None or check.capability in get_architecture(name).capabilities
]


@pytest.mark.parametrize(("name", "check"), CASES)
def test_architecture_passes_the_conformance_check(name, check):
    result = run_check(name, check)
    assert result.passed, f"{name}: {check.name}: {result.detail} (fix: {result.fix})"


def test_every_declared_capability_has_a_check():
    from ganbench.run.conformance import KNOWN_CAPABILITIES

    for name in list_architectures():
        unknown = get_architecture(name).capabilities - KNOWN_CAPABILITIES
        assert not unknown, f"{name} declares {unknown}, which no conformance check covers"
