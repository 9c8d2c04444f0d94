"""InfoGAN continuous codes against known factors: Spearman ρ is right, a planted code-factor
link is found and the noise control stays near 0."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy.stats import spearmanr

from ganbench.architectures.infogan import CodeSpec
from ganbench.datasets.domain import DomainNetwork, Head, heads_for
from ganbench.explainers.code_factors import CodeFactorExplainer, spearman
from ganbench.registry import create_architecture, create_dataset, get_explainer
from tests.conftest import eval_context


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (200, 3), generator=g).float()  # many ties
    b = torch.randn(200, 2, generator=g) + a[:, :1]
    ours = spearman(a, b)
    for i in range(3):
        for j in range(2):
            assert float(ours[i, j]) == pytest.approx(spearmanr(a[:, i], b[:, j])[0], abs=1e-9)


class Planted:
    """Two continuous codes: code 0 sets factor "x" (monotone, non-linear), code 1 sets "scale";
    "y" is pure noise. The image carries the three values in its first three pixels."""

    capabilities = frozenset({"layers", "codes"})

    def __init__(self) -> None:
        self.spec = CodeSpec(noise_dim=6, categories=2, continuous=2)
        self.latent_dim = self.spec.latent_dim

    def code_spec(self):
        return self.spec

    def sample_latent(self, n, generator=None):
        noise = torch.randn(n, 6, generator=generator)
        cat = torch.nn.functional.one_hot(torch.randint(0, 2, (n,), generator=generator), 2)
        cont = torch.rand(n, 2, generator=generator) * 2 - 1
        return torch.cat([noise, cat.float(), cont], 1)

    def split_latent(self, z):
        return z[:, :6], z[:, 6:8].argmax(1), z[:, 8:]

    def generate(self, z):
        x = torch.zeros(len(z), 1, 4, 4)
        x[:, 0, 0, 0] = torch.tanh(2 * z[:, 8])  # x: a monotone function of code 0
        x[:, 0, 0, 1] = z[:, 9] ** 3  # scale: monotone in code 1
        x[:, 0, 0, 2] = torch.sin(1000 * z[:, 0])  # y: scrambled noise
        return x


class Readout:
    heads_spec = [Head("shape", 3), Head("x", 0), Head("y", 0), Head("scale", 0)]

    def predict(self, x):
        return {
            "shape": torch.zeros(len(x), dtype=torch.long),
            "x": x[:, 0, 0, 0],
            "y": x[:, 0, 0, 2],
            "scale": x[:, 0, 0, 1],
        }


def test_planted_codes_are_matched_to_their_factors(tmp_path):
    shapes = create_dataset("shapes", train_size=16, test_size=16)
    ctx = eval_context(Planted(), shapes, tmp_path, domain=Readout())
    scores = CodeFactorExplainer(n=500).evaluate(ctx)
    assert scores["code_factor_rho"] == pytest.approx(1.0, abs=1e-9)  # monotone: ρ = 1
    assert scores["code_factor_rho_noise"] < 0.2
    assert scores["code_factor_distinct"] == 2
    report = json.loads((tmp_path / "code-factors.json").read_text())
    assert report["best_factor"] == ["x", "scale"]


def test_applies_only_with_codes_and_factors():
    ev = get_explainer("code_factors")
    digits = create_dataset("digits")
    shapes = create_dataset("shapes", train_size=16, test_size=16)
    assert "factors" in ev.not_applicable_reason(
        frozenset({"codes"}), digits.spec.features, "infogan"
    )
    assert "codes" in ev.not_applicable_reason(frozenset({"layers"}), shapes.spec.features, "dcgan")
    assert ev.not_applicable_reason(frozenset({"codes"}), shapes.spec.features, "infogan") is None


def test_runs_on_infogan(tmp_path):
    shapes = create_dataset("shapes", train_size=16, test_size=16)
    torch.manual_seed(0)
    model = create_architecture("infogan", shapes.spec, width=8).eval()
    net = DomainNetwork(3, heads_for(shapes.spec), width=4).eval()
    scores = CodeFactorExplainer(n=64).evaluate(eval_context(model, shapes, tmp_path, domain=net))
    assert set(scores) == {s.name for s in CodeFactorExplainer.scores}
    assert all(math.isfinite(v) for v in scores.values())
