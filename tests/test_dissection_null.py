"""GAN Dissection against planted truth (issue 31): constant units, float noise from
upsampling, white and sparse noise units, and the choice of the reported layer.

The planted generator draws a circle from one unit that is exactly the circle's mask; beside
it are a coarse layer of constant units (bilinear upsampling turns 0.7 into 0.70000005 at a
fixed pattern of pixels), a layer of white-noise units at image size and a layer of sparse
noise units at 8x8, none of which draws anything. Only the planted unit may be labelled, and
its layer must be the one reported.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.evaluation import evaluate_and_write
from ganbench.explainers._dissection_stats import IoUTally, TopLevel, on_map
from ganbench.explainers.dissection import DissectionExplainer
from tests.conftest import eval_context
from tests.test_dissection import PlantedGenerator, shapes

LATENT = 9


def hash_noise(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Deterministic pseudo-random numbers in [0, 1), one per column of ``a``, from z: the
    same z gives the same numbers (dissection regenerates its latents), different z give
    unrelated ones."""
    h = torch.sin(z.double() @ a.T + b) * 43758.5453
    return (h - h.floor()).float()


class NoiseUnits(nn.Module):
    """z -> ``units`` maps at ``size`` x ``size`` of noise that depends on z only through a
    hash: no relation to anything drawn. ``sparse``: zero but at the top 3% of values, so
    more than the quantile's 95% of positions sit at the floor."""

    def __init__(self, units: int, size: int, sparse: bool, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.shape = (units, size, size)
        self.a = torch.randn(units * size * size, LATENT, generator=g, dtype=torch.float64) * 50
        self.b = torch.rand(units * size * size, generator=g, dtype=torch.float64) * 6.283
        self.sparse = sparse

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = hash_noise(z, self.a, self.b).view(len(z), *self.shape)
        return F.relu(u - 0.97) if self.sparse else u


class ConstantUnits(nn.Module):
    """z -> 4 units at 4x4, each constant (0.7, 0.3, 0, -1.1) whatever z is."""

    def __init__(self) -> None:
        super().__init__()
        self.values = torch.tensor([0.7, 0.3, 0.0, -1.1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.values.view(1, -1, 1, 1).expand(len(z), -1, 4, 4).clone()


class LayeredGenerator(nn.Module):
    """The circle generator of tests/test_dissection.py with three layers that draw nothing:
    their outputs are computed on every call (so they are hooked like any layer) and added
    with weight 0."""

    def __init__(self) -> None:
        super().__init__()
        self.constant = ConstantUnits()
        self.white = NoiseUnits(64, 32, sparse=False, seed=11)
        self.sparse = NoiseUnits(64, 8, sparse=True, seed=12)
        self.planted = PlantedGenerator()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.planted(z)
        side = sum(m(z).mean() for m in (self.constant, self.white, self.sparse))
        return x + 0.0 * side


class Layered:
    capabilities = frozenset({"layers"})
    latent_dim = LATENT

    def __init__(self) -> None:
        self.generator = LayeredGenerator().eval()

    def sample_latent(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z):
        return self.generator(z)

    def generator_layers(self):
        g = self.generator
        return {
            "constant": g.constant,
            "planted": g.planted.features,
            "white": g.white,
            "sparse": g.sparse,
        }


@functools.cache
def layered_result(tmp):
    ctx = eval_context(Layered(), shapes(), tmp)
    ev = DissectionExplainer(
        n=200,
        n_intervention=100,
        quantile=0.95,  # the shipped configs' quantile
        top_k=1,
        random_repeats=3,
        batch_size=50,
        figure=False,
    )
    scores = evaluate_and_write(ev, ctx)
    return scores, json.loads((tmp / "dissection.json").read_text())


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    return layered_result(tmp_path_factory.mktemp("layered"))


def test_constant_units_are_never_labelled(layered):
    _, report = layered
    layer = report["layers"]["constant"]
    assert layer["interpretable"] == 0
    assert not any(u["labelled"] for u in layer["units_detail"])


def test_noise_units_are_never_labelled(layered):
    _, report = layered
    for name in ("white", "sparse"):
        layer = report["layers"][name]
        labelled = [u for u in layer["units_detail"] if u["labelled"]]
        assert labelled == [], f"{name}: noise units labelled {labelled[:3]}"


def test_the_planted_layer_is_reported(layered):
    scores, report = layered
    assert report["best_layer"] == "planted"
    assert scores["interpretable_units"] == 1
    assert scores["interpretable_units_all"] == 1
    # the rule run with every image given another image's segmentation labels nothing
    assert scores["interpretable_units_rolled"] == 0
    assert scores["dissection_agreement"] >= 0.9
    assert scores["dissection_agreement_rolled"] < 0.5 * scores["dissection_agreement"]
    # the planted unit draws the circle: ablating it removes the circle's pixels
    assert scores["ace_ablation_share"] == pytest.approx(1.0, abs=0.02)
    assert scores["ace_ablation_random"] < 0.1 * scores["ace_ablation"]
    assert scores["best_layer_depth"] == pytest.approx(1 / 3)


def test_iou_ceiling_of_a_binary_unit_is_one(layered):
    _, report = layered
    for layer in report["layers"].values():
        for u in layer["units_detail"]:
            assert u["iou"] <= u["iou_ceiling"] + 1e-9
    unit0 = report["layers"]["planted"]["units_detail"][0]
    # the planted unit is on exactly where the circle is: its ceiling is 1, and it reaches it
    assert unit0["iou_ceiling"] == pytest.approx(1.0, abs=0.05)
    assert unit0["iou"] >= 0.9


# --- the pieces --------------------------------------------------------------------------


def test_upsampling_noise_does_not_switch_a_constant_unit_on():
    acts = torch.full((6, 1, 4, 4), 0.7)
    t = TopLevel(1, 6 * 16, 0.95)
    t.update(acts)
    up = F.interpolate(acts, size=(32, 32), mode="bilinear", align_corners=False)
    assert (up != 0.7).any()  # the float noise this guards against is there
    on = on_map(up, t.levels(), t.minimum, t.maximum)
    assert not on.any()


def test_upsampled_binary_unit_is_on_at_its_plateau():
    mask = torch.zeros(3, 1, 8, 8)
    mask[:, :, 2:6, 3:7] = 1.0
    t = TopLevel(1, 3 * 64, 0.9)
    t.update(mask)
    up = F.interpolate(mask, size=(32, 32), mode="bilinear", align_corners=False)
    on = on_map(up, t.levels(), t.minimum, t.maximum)
    # on wherever the upsampled map is at 1 up to float noise, nowhere below
    assert torch.equal(on, up >= 1 - 1e-5)
    assert on.any()


def test_pair_statistic_matches_a_direct_computation_and_holds_its_level():
    g = torch.Generator().manual_seed(5)
    n, units, k = 40, 30, 3
    on = torch.rand(n, units, 8, 8, generator=g) > 0.8
    masks = torch.rand(n, k, 8, 8, generator=g) > 0.5
    tally = IoUTally(units, k)
    for i in range(0, n, 10):
        tally.update(on[i : i + 10], masks[i : i + 10])
    # direct: images 2j and 2j+1 exchange their masks
    inter = torch.einsum("nuhw,nkhw->nuk", on.double(), masks.double())
    swapped = masks.view(n // 2, 2, k, 8, 8).flip(1).reshape(n, k, 8, 8)
    cross = torch.einsum("nuhw,nkhw->nuk", on.double(), swapped.double())
    d = (inter - cross).view(n // 2, 2, units, k).sum(1)
    assert torch.allclose(tally.pair_sum, d.sum(0))
    assert torch.allclose(tally.pair_sq, (d**2).sum(0))
    t = tally.evidence()
    assert torch.allclose(t, d.sum(0) / (d**2).sum(0).sqrt())
    # independent maps and masks: t stays within its sub-Gaussian bound
    assert float(t.abs().max()) < math.sqrt(2 * math.log(units * k / 0.01))
    # a unit that is one of the masks: t at its maximum, sqrt(number of pairs)
    tally2 = IoUTally(1, k)
    tally2.update(masks[:, :1], masks)
    assert float(tally2.evidence()[0, 0]) > 0.9 * math.sqrt(n // 2)
    # ... and in the control run (each image given another's masks) no evidence at all
    c_iou, c_evidence = tally2.control()
    assert float(c_evidence.abs().max()) < math.sqrt(2 * math.log(k / 0.01))
    assert float(c_iou[0, 0]) < 0.5 * float(tally2.iou()[0, 0])
