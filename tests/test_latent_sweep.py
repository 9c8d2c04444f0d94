"""The latent_sweep explainer: planted truth ranks first, the helpers, real architectures."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import nn

from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_architecture, create_dataset, get_architecture
from ganbench.explainers.latent_sweep import (
    LatentSweepExplainer,
    participation_ratio,
    spearman,
    top_share,
)
from tests.conftest import Projection, brief_dcgan, eval_context


@functools.cache
def digits():
    return create_dataset("digits")


@functools.cache
def domain_net():
    """A real digits domain network, trained briefly (seconds, not the suite's ~30 s)."""
    from ganbench.datasets.domain import train_domain_network

    net, _ = train_domain_network(digits(), {"epochs": 2, "width": 8})
    return net.eval()


class OneDimension:
    """A generator whose image depends on latent coordinate ``k`` only (others: ``leak``)."""

    def __init__(self, latent_dim: int = 12, k: int = 5, leak: float = 0.0) -> None:
        self.latent_dim, self.k, self.leak = latent_dim, k, leak
        g = torch.Generator().manual_seed(0)
        self.pattern = torch.randn(1, 1, 8, 8, generator=g)
        self.layer = nn.Identity()

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        s = 0.3 * z[:, self.k] + self.leak * z.sum(1)
        return self.layer(torch.tanh(s[:, None, None, None] * self.pattern))

    def generator_layers(self) -> dict[str, nn.Module]:
        return {"out": self.layer}


def context(model, tmp_path, net):
    return eval_context(model, digits(), tmp_path, domain=net)


def test_participation_ratio_and_top_share():
    assert participation_ratio(torch.ones(37)) == pytest.approx(37)
    assert participation_ratio(torch.full((10,), 0.2)) == pytest.approx(10)
    one = torch.zeros(20)
    one[3] = 2.5
    assert participation_ratio(one) == pytest.approx(1)
    assert participation_ratio(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2)
    assert participation_ratio(torch.zeros(5)) == 0.0
    assert top_share(one) == pytest.approx(1)
    assert top_share(torch.ones(20)) == pytest.approx(0.1)  # top 2 of 20
    assert top_share(torch.ones(5)) == pytest.approx(0.2)  # at least one
    assert spearman(torch.arange(6.0), torch.arange(6.0) ** 3) == pytest.approx(1)
    assert spearman(torch.arange(6.0), -torch.arange(6.0)) == pytest.approx(-1)
    assert spearman(torch.arange(6.0), torch.ones(6)) == 0.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 0}, "n must be >= 1, got 0"),
        ({"steps": 1}, "steps must be >= 2, got 1"),
        ({"low": 3.0}, "needs high > low, got low 3.0 and high 3.0"),
    ],
)
def test_parameters_outside_their_ranges_fail_when_the_explainer_is_made(params, message):
    with pytest.raises(ConfigError, match=message):
        LatentSweepExplainer(**params)


def test_the_only_dimension_that_matters_ranks_first(tmp_path):
    model = OneDimension(latent_dim=12, k=5)
    scores = evaluate_and_write(
        LatentSweepExplainer(n=8), context(model, tmp_path, Projection(64, 16))
    )
    assert set(scores) == {s.name for s in LatentSweepExplainer.scores}
    assert scores["sweep_effective_dims"] == pytest.approx(1)
    assert scores["sweep_effective_fraction"] == pytest.approx(1 / 12)
    assert scores["sweep_top_share"] == pytest.approx(1)
    report = json.loads((tmp_path / "latent-sweep.json").read_text())
    assert report["ranking"][0] == 5 and report["swept"] == 12
    effects = {d["dim"]: d for d in report["dims"]}
    assert effects[5]["feature_effect"] > 0 and effects[5]["pixel_effect"] > 0
    assert all(effects[d]["feature_effect"] == 0 for d in effects if d != 5)
    assert scores["sweep_feature_effect"] == pytest.approx(effects[5]["feature_effect"] / 12)
    assert (tmp_path / "latent-sweep.png").stat().st_size > 1000


def test_a_small_leak_keeps_the_ranking_and_spreads_the_effect(tmp_path):
    model = OneDimension(latent_dim=12, k=7, leak=0.02)
    scores = evaluate_and_write(
        LatentSweepExplainer(n=8, figure=False), context(model, tmp_path, Projection(64, 16))
    )
    report = json.loads((tmp_path / "latent-sweep.json").read_text())
    assert report["ranking"][0] == 7
    assert 1 < scores["sweep_effective_dims"] < 6  # far from the 12 of equal effects
    assert scores["sweep_rank_agreement"] > 0.5


def test_infogan_categorical_coordinates_are_skipped(tmp_path):
    arch = create_architecture("infogan", digits().spec, width=8).eval()
    explainer = LatentSweepExplainer(n=2, steps=3, figure=False)
    scores = evaluate_and_write(explainer, context(arch, tmp_path, Projection(32 * 32, 16)))
    report = json.loads((tmp_path / "latent-sweep.json").read_text())
    spec = arch.code_spec()
    skipped = list(range(spec.noise_dim, spec.noise_dim + spec.categories))
    assert report["skipped"]["coordinates"] == skipped and report["skipped"]["why"]
    assert report["swept"] == arch.latent_dim - spec.categories
    assert not set(report["ranking"]) & set(skipped)
    assert 1 <= scores["sweep_effective_dims"] <= report["swept"]


def test_end_to_end_on_a_briefly_trained_dcgan_with_the_domain_network(tmp_path):
    arch = brief_dcgan(30, latent_dim=16)
    arch.eval()
    scores = evaluate_and_write(LatentSweepExplainer(n=16), context(arch, tmp_path, domain_net()))
    assert 1 <= scores["sweep_effective_dims"] <= 16
    assert 0 < scores["sweep_effective_fraction"] <= 1
    assert 0.1 <= scores["sweep_top_share"] <= 1
    assert scores["sweep_pixel_effect"] > 0 and scores["sweep_feature_effect"] > 0
    assert -1 <= scores["sweep_rank_agreement"] <= 1
    report = json.loads((tmp_path / "latent-sweep.json").read_text())
    assert sorted(report["ranking"]) == list(range(16)) and len(report["dims"]) == 16
    assert (tmp_path / "latent-sweep.png").stat().st_size > 1000
    # the real-data reference has no model and no "layers": n/a, not an error
    reason = LatentSweepExplainer.not_applicable_reason(
        frozenset(), digits().spec.features, "real data"
    )
    assert reason and "layers" in reason
    assert (
        LatentSweepExplainer.not_applicable_reason(
            get_architecture("dcgan").capabilities, digits().spec.features, "dcgan"
        )
        is None
    )
