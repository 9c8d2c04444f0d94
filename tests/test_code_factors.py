"""InfoGAN continuous codes against known factors: Spearman ρ is right, a planted code-factor
link is found and the noise control stays near 0."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy.stats import spearmanr

from ganbench.architectures.infogan import CodeSpec
from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_architecture, create_dataset, get_explainer
from ganbench.datasets.domain import DomainNetwork, Head, heads_for
from ganbench.explainers.code_factors import CodeFactorExplainer, correlation_ratio, spearman
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
    scores = evaluate_and_write(CodeFactorExplainer(n=500), ctx)
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


def test_fewer_than_ten_images_fail_when_the_explainer_is_made():
    with pytest.raises(ConfigError, match="n must be >= 10, got 9"):
        CodeFactorExplainer(n=9)


def test_runs_on_infogan(tmp_path):
    shapes = create_dataset("shapes", train_size=16, test_size=16)
    torch.manual_seed(0)
    model = create_architecture("infogan", shapes.spec, width=8).eval()
    net = DomainNetwork(3, heads_for(shapes.spec), width=4).eval()
    scores = evaluate_and_write(
        CodeFactorExplainer(n=64), eval_context(model, shapes, tmp_path, domain=net)
    )
    assert set(scores) == {s.name for s in CodeFactorExplainer.scores}
    assert all(math.isfinite(v) for v in scores.values())


class PlantedColour(Planted):
    """Code 0 sets the colour (6 bands over its range: a categorical factor), code 1 the
    scale; x and y are noise."""

    def generate(self, z):
        x = torch.zeros(len(z), 1, 4, 4)
        x[:, 0, 0, 0] = torch.sin(1000 * z[:, 0])  # x: noise
        x[:, 0, 0, 1] = z[:, 9]  # scale = code 1
        x[:, 0, 0, 2] = torch.sin(1000 * z[:, 1])  # y: noise
        x[:, 0, 0, 3] = ((z[:, 8] + 1) * 3).floor().clamp(0, 5) / 10  # colour band of code 0
        return x


class ColourReadout:
    """The real shapes network's heads: shape, colour, x, y, scale, background."""

    def __init__(self, collapse: bool = False) -> None:
        shapes = create_dataset("shapes", train_size=16, test_size=16)
        self.heads_spec = heads_for(shapes.spec)
        self.collapse = collapse

    def predict(self, x):
        n = len(x)
        colour = (x[:, 0, 0, 3] * 10).round().long()
        return {
            "shape": torch.zeros(n, dtype=torch.long),
            "colour": torch.zeros_like(colour) if self.collapse else colour,
            "x": x[:, 0, 0, 0],
            "y": x[:, 0, 0, 2],
            "scale": x[:, 0, 0, 1],
            "background": torch.zeros(n, dtype=torch.long),
        }


def test_a_code_that_sets_a_categorical_factor_is_found(tmp_path):
    """Shapes' colour is categorical (6 levels): a continuous code that picks the colour by
    bands of its range is tied to it (correlation ratio of its ranks ~0.99), not scored as
    unrelated to every factor."""
    shapes = create_dataset("shapes", train_size=16, test_size=16)
    ctx = eval_context(PlantedColour(), shapes, tmp_path, domain=ColourReadout())
    scores = evaluate_and_write(CodeFactorExplainer(n=600), ctx)
    report = json.loads((tmp_path / "code-factors.json").read_text())
    assert report["best_factor"] == ["colour", "scale"]
    assert scores["code_factor_rho"] >= 0.95
    assert scores["code_factor_rho_noise"] < 0.2
    assert scores["code_factor_distinct"] == 2
    # a categorical head that reads one class for every image carries nothing
    ctx = eval_context(PlantedColour(), shapes, tmp_path, domain=ColourReadout(collapse=True))
    scores = evaluate_and_write(CodeFactorExplainer(n=600), ctx)
    report = json.loads((tmp_path / "code-factors.json").read_text())
    assert report["best_factor"][1] == "scale" and report["best_factor"][0] != "colour"
    assert 0.5 <= scores["code_factor_rho"] < 0.7  # scale's 1 and code 0's ~0.1, averaged
    assert all(math.isfinite(v) for v in scores.values())


def test_correlation_ratio_on_known_groups():
    codes = torch.linspace(-1, 1, 600)[:, None]
    bands = ((codes[:, 0] + 1) * 3).floor().clamp(0, 5).long()
    # uniform ranks cut into 6 equal bands: eta^2 = 1 - 1/36 (within-band variance left)
    assert float(correlation_ratio(codes, bands, 6)[0]) == pytest.approx(
        (1 - 1 / 36) ** 0.5, abs=1e-3
    )
    assert float(correlation_ratio(codes, torch.zeros(600, dtype=torch.long), 6)[0]) == 0.0
    alternating = torch.arange(600) % 3  # every class spread evenly over the ranks
    assert float(correlation_ratio(codes, alternating, 3)[0]) < 0.01
