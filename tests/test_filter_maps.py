"""The filter_maps explainer: planted dead filters are found, pruning them is harmless, and it
runs on every registered architecture."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import nn

from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import (
    create_architecture,
    create_dataset,
    get_architecture,
    list_architectures,
)
from ganbench.datasets.domain import DomainNetwork, heads_for
from ganbench.explainers._filter_maps_pruning import dead_filters, frechet_distance
from ganbench.explainers.filter_maps import FilterMapsExplainer
from tests.conftest import Projection, brief_dcgan, eval_context

DEAD = [0, 3, 5]


@functools.cache
def digits():
    return create_dataset("digits")


@functools.cache
def random_domain_net():
    """The domain network's class at random initialisation (the embedding is all that's used)."""
    torch.manual_seed(0)
    return DomainNetwork(digits().spec.channels, heads_for(digits().spec), width=8).eval()


class PlantedDead:
    """z -> 8 filters at 4x4 (filters DEAD have zero weights and bias, so ReLU gives 0) ->
    6 filters at 4x4 -> a 1-channel Tanh image. The image module is listed among the layers
    too, to check that it is not taken for a hidden layer."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.latent_dim = 8
        linear = nn.Linear(8, 8 * 16)
        with torch.no_grad():
            linear.bias.fill_(0.5)
            for c in DEAD:
                linear.weight[c * 16 : (c + 1) * 16] = 0
                linear.bias[c * 16 : (c + 1) * 16] = 0
        conv = nn.Conv2d(8, 6, 3, padding=1)
        with torch.no_grad():
            conv.bias.fill_(0.5)
        self.layers = {
            "hidden1": nn.Sequential(linear, nn.Unflatten(1, (8, 4, 4)), nn.ReLU()),
            "hidden2": nn.Sequential(conv, nn.ReLU()),
            "image": nn.Sequential(nn.Conv2d(6, 1, 1), nn.Tanh()),
        }
        self.generator = nn.Sequential(*self.layers.values()).eval()

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def generator_layers(self) -> dict[str, nn.Module]:
        return dict(self.layers)


def context(model, tmp_path, net):
    return eval_context(model, digits(), tmp_path, domain=net)


def test_helpers():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 4, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # two Gaussians with the same covariance, means 3 apart along one axis: FD = 9
    b = a.clone()
    b[:, 0] += 3
    assert frechet_distance(a, b) == pytest.approx(9, rel=1e-6)
    assert frechet_distance(a, 2 * a) > 1
    means = torch.tensor([0.0, 1.0, 1.2, 0.005, 0.8])  # median 0.8
    assert dead_filters(means, 0.01).tolist() == [True, False, False, True, False]
    assert dead_filters(torch.zeros(3), 0.01).all()


def test_planted_dead_filters_are_found_and_pruning_them_is_harmless(tmp_path):
    ctx = context(PlantedDead(), tmp_path, Projection(16, 12))
    scores = evaluate_and_write(FilterMapsExplainer(n=32), ctx)
    assert set(scores) == {s.name for s in FilterMapsExplainer.scores}
    assert scores["dead_filter_fraction"] == pytest.approx(len(DEAD) / (8 + 6))
    report = json.loads((tmp_path / "filter-maps.json").read_text())
    assert list(report["layers"]) == ["hidden1", "hidden2"]  # the image layer is left out
    assert report["layers"]["hidden1"]["dead_filters"] == DEAD
    assert report["layers"]["hidden2"]["dead"] == 0
    assert report["layers"]["hidden2"]["prune_random"]["feature_distance"] == 0
    assert scores["prune_dead_feature_distance"] == 0
    assert scores["prune_dead_pixel_change"] == 0
    assert scores["prune_dead_frechet"] == pytest.approx(0, abs=1e-6)
    assert scores["prune_random_feature_distance"] > 0.05
    assert scores["prune_random_pixel_change"] > 0.01
    assert scores["prune_random_frechet"] > 1e-3
    assert (tmp_path / "filter-maps.png").stat().st_size > 1000


def test_forced_dead_filters_of_a_trained_dcgan(tmp_path):
    arch = brief_dcgan(30, latent_dim=16)
    killed = [1, 4, 6]
    with torch.no_grad():  # BatchNorm scale and shift 0: the filter's ReLU output is 0
        bn = arch.generator.blocks[2][1]
        bn.weight[killed] = 0
        bn.bias[killed] = 0
    arch.eval()
    ctx = context(arch, tmp_path, random_domain_net())
    scores = evaluate_and_write(FilterMapsExplainer(n=32), ctx)
    report = json.loads((tmp_path / "filter-maps.json").read_text())
    assert list(report["layers"]) == ["block1", "block2"]
    assert set(killed) <= set(report["layers"]["block2"]["dead_filters"])
    assert scores["dead_filter_fraction"] >= len(killed) / (16 + 8)
    assert scores["prune_random_feature_distance"] > 0
    assert scores["prune_dead_feature_distance"] < 0.1 * scores["prune_random_feature_distance"]
    assert scores["prune_dead_pixel_change"] < 0.1 * scores["prune_random_pixel_change"]
    # pruning the least active quarter (the killed filters first) costs less than a random quarter
    least = scores["prune_least_active_feature_distance"]
    assert least < scores["prune_random_share_feature_distance"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"prune_fraction": 0.0}, r"prune_fraction must be in \(0, 1\]"),
        ({"n": 1}, "n must be >= 2"),
        ({"layers": 0}, "layers must be >= 1"),
        ({"random_repeats": 0}, "random_repeats must be >= 1"),
    ],
)
def test_parameters_out_of_range_fail_when_the_explainer_is_made(params, message):
    with pytest.raises(ConfigError, match=message):
        FilterMapsExplainer(**params)
    FilterMapsExplainer(prune_fraction=1.0, n=2)  # the bounds themselves are allowed


@pytest.mark.parametrize("name", list_architectures())
def test_runs_on_every_registered_architecture(name, tmp_path):
    params = {"width": 8} if "width" in get_architecture(name).defaults else {}
    arch = create_architecture(name, digits().spec, **params).eval()
    explainer = FilterMapsExplainer(n=8, random_repeats=1, top_k=3)
    scores = evaluate_and_write(explainer, context(arch, tmp_path, random_domain_net()))
    assert set(scores) == {s.name for s in FilterMapsExplainer.scores}
    assert all(v == v and v >= 0 for v in scores.values()), scores  # finite, not NaN
    assert 0 <= scores["dead_filter_fraction"] <= 1
    report = json.loads((tmp_path / "filter-maps.json").read_text())
    assert 1 <= len(report["layers"]) <= 2
    assert (tmp_path / "filter-maps.png").stat().st_size > 1000
    assert (
        FilterMapsExplainer.not_applicable_reason(arch.capabilities, digits().spec.features, name)
        is None
    )
