"""Shared fixtures: tiny matrix configs and temporary registrations."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest

from ganbench.registry import ARCHITECTURES

TINY = """
name = "tiny"
seeds = [0]
architectures = ["dcgan"]
datasets = ["digits"]
metrics = ["c2st", "mmd"]
references = []

[train]
steps = 40
batch_size = 32
log_every = 10
grid_size = 16

[architecture.dcgan]
width = 8
latent_dim = 16

[metric.c2st]
n = 64
epochs = 2
width = 8

[metric.mmd]
n = 64
permutations = 50
"""


@pytest.fixture
def tiny_config(tmp_path: Path):
    """Write a tiny matrix config (optionally with text replaced) and return its path."""

    def make(
        replace: dict[str, str] | None = None, extra: str = "", name: str = "tiny.toml"
    ) -> Path:
        text = TINY
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / name
        path.write_text(text + textwrap.dedent(extra))
        return path

    return make


@pytest.fixture(autouse=True, scope="session")
def _flush_denormals():
    """As the harness does for every trial: denormals make CPU training ~70x slower."""
    from ganbench.execute import prepare_cpu

    prepare_cpu()


@pytest.fixture(scope="session")
def domain_cache(tmp_path_factory):
    """One folder of domain networks for the whole session (each takes ~30 s to train)."""
    return tmp_path_factory.mktemp("domain")


@pytest.fixture(scope="session")
def digits_domain_net(domain_cache):
    """The digits domain network, trained by the suite on CPU (held-out accuracy ~0.997)."""
    from ganbench.datasets.domain import domain_network

    return domain_network("digits", {}, domain_cache)


@contextlib.contextmanager
def registered(registry, name: str, cls: type):
    """Register ``cls`` for the duration of a test only (registry-parametrised tests stay clean)."""
    registry.register(name)(cls)
    try:
        yield cls
    finally:
        registry._classes.pop(name, None)


@pytest.fixture
def temp_architecture():
    return lambda name, cls: registered(ARCHITECTURES, name, cls)
