"""Shared fixtures: tiny matrix configs and temporary registrations."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest

from ganbench.core.registry import ARCHITECTURES

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
    from ganbench.run.numerics import prepare_cpu

    prepare_cpu()


@pytest.fixture
def one_thread():
    """Run on one CPU thread: small problems gain nothing from more, and on a busy 2-core
    machine spinning OpenMP threads slows them down 25-50 fold. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def domain_cache(tmp_path_factory):
    """One folder for domain networks trained during the session (datasets whose parameters
    have no pinned network; the built-in ones load their shipped weights)."""
    return tmp_path_factory.mktemp("domain")


@pytest.fixture(scope="session")
def digits_domain_net(domain_cache):
    """The digits domain network: the pinned one shipped with ganbench (held-out accuracy 0.994)."""
    from ganbench.run.domain import domain_network

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


def _logit_gap_explainer():
    """A toy explainability evaluator with a control, for leaderboard tests: the gap between
    D's mean logit on real and on generated images, beside the same gap with the two sets'
    labels shuffled (its chance level)."""
    import torch

    from ganbench.core.evaluator import Evaluator
    from ganbench.core.scores import Score

    class LogitGapExplainer(Evaluator):
        """D's real-minus-generated logit gap, beside the gap with labels shuffled."""

        version = "1"
        requires = frozenset({"layers"})
        defaults = {"n": 64}
        scores = (
            Score(
                "logit_gap",
                "higher",
                "D's mean logit on real minus on generated images",
                control="logit_gap_shuffled",
            ),
            Score("logit_gap_shuffled", "none", "the same gap with real/generated shuffled"),
        )

        def evaluate(self, ctx):
            n = self.params["n"]
            with torch.no_grad():
                real = ctx.model.discriminator_logits(ctx.reals(n))
                fake = ctx.model.discriminator_logits(ctx.fakes(len(real)))
            pooled = torch.cat([real, fake])
            order = torch.randperm(len(pooled), generator=ctx.rng(7))
            shuffled = pooled[order]
            return {
                "logit_gap": float(real.mean() - fake.mean()),
                "logit_gap_shuffled": float(
                    shuffled[: len(real)].mean() - shuffled[len(real) :].mean()
                ),
            }

    return LogitGapExplainer


@pytest.fixture(scope="session")
def tiny_board(tmp_path_factory):
    """A rendered leaderboard of a tiny matrix: digits and shapes, two contenders (DCGAN at two
    widths, one a config variant), their untrained controls, the real data, two metrics and a
    toy explainability evaluator with a control. Returns the leaderboard folder."""
    from ganbench.board.leaderboard import render
    from ganbench.core.registry import EXPLAINERS
    from ganbench.run.config_load import load_config
    from ganbench.run.runner import run_matrix
    from ganbench.run.store import Store

    root = tmp_path_factory.mktemp("board")
    text = (
        TINY.replace('datasets = ["digits"]', 'datasets = ["digits", "shapes"]')
        .replace('architectures = ["dcgan"]', 'architectures = ["dcgan", "dcgan-wide"]')
        .replace("references = []", 'references = ["untrained", "real"]\nexplainers = ["logitgap"]')
    )
    text += '\n[architecture.dcgan-wide]\nvariant_of = "dcgan"\nwidth = 16\nlatent_dim = 16\n'
    config = root / "tiny.toml"
    config.write_text(text)
    with registered(EXPLAINERS, "logitgap", _logit_gap_explainer()):
        store = Store(root / "runs" / "ganbench.sqlite")
        summary = run_matrix(
            load_config(str(config)), store, device="cpu", quiet=True, in_process=True
        )
        assert not summary.failed, summary.failed
        render(store.path, root / "leaderboard", configs=[str(config)])
    return root / "leaderboard"


def eval_context(model, dataset, artifact_dir, *, domain=None, seed: int = 0):
    """An EvalContext on the CPU for calling an evaluator directly; ``domain`` stands in for
    the dataset's domain network (anything with ``features``)."""
    import torch

    from ganbench.core.evaluator import EvalContext

    cache = {} if domain is None else {"domain": domain}
    return EvalContext(
        model=model,
        dataset=dataset,
        device=torch.device("cpu"),
        seed=seed,
        artifact_dir=artifact_dir,
        _cache=cache,
    )


class Projection:
    """A stand-in domain network: a fixed random linear map of the pixels to ``dim`` features."""

    def __init__(self, pixels: int, dim: int) -> None:
        import torch

        self.w = torch.randn(pixels, dim, generator=torch.Generator().manual_seed(1))

    def features(self, x):
        return x.flatten(1) @ self.w


def brief_dcgan(steps: int, *, width: int = 8, latent_dim: int | None = None, batch: int = 32):
    """A DCGAN on digits after ``steps`` seeded training steps (in train mode)."""
    import torch

    from ganbench.core.registry import create_architecture, create_dataset

    digits = create_dataset("digits")
    torch.manual_seed(0)
    params = {"width": width} if latent_dim is None else {"width": width, "latent_dim": latent_dim}
    arch = create_architecture("dcgan", digits.spec, **params)
    images = digits.split("train").images
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        arch.train_step(images[torch.randint(0, len(images), (batch,), generator=g)])
    return arch
