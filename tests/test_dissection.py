"""GAN Dissection: the streaming statistics equal direct computations, a planted concept unit
is found, labelled and causal, random units are not, and it runs on every architecture."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from torch import nn

from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_architecture, create_dataset, list_architectures
from ganbench.datasets.shapes import COLOURS, CONCEPTS, _inside
from ganbench.explainers._dissection_generator import batches, edited
from ganbench.explainers._dissection_stats import IoUTally, TopLevel, label_units, on_map
from ganbench.explainers.dissection import DissectionExplainer
from tests.conftest import eval_context

# --- the streaming pieces against direct computations -----------------------------------


def test_top_level_is_the_exact_quantile_level():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(50, 6, 5, 7, generator=g)
    q = 0.97
    t = TopLevel(6, 50 * 5 * 7, q)
    for i in range(0, 50, 8):  # uneven batches
        t.update(acts[i : i + 8])
    flat = acts.transpose(0, 1).reshape(6, -1)
    m = math.ceil((1 - q) * flat.shape[1])
    expected = flat.sort(1, descending=True).values[:, m - 1]
    assert torch.equal(t.levels(), expected)
    assert torch.equal(t.minimum, flat.min(1).values)
    # the share of activations at or above the level is 1 - q, to one value
    share = (flat >= expected[:, None]).float().mean(1)
    assert torch.all((share - (1 - q)).abs() <= 1 / flat.shape[1] + 1e-9)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 1}, "n must be >= 2"),
        ({"quantile": 1.0}, r"quantile must be in \(0, 1\), got 1.0"),
        ({"alpha": 0.0}, r"alpha must be in \(0, 1\)"),
        ({"top_k": 0}, "top_k must be >= 1"),
    ],
)
def test_parameters_out_of_range_fail_when_the_explainer_is_made(params, message):
    with pytest.raises(ConfigError, match=message):
        DissectionExplainer(**params)


def test_on_map_binary_and_silent_units():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 2:6] = 1.0  # a binary map on 12 of 64 pixels
    silent = torch.zeros(1, 1, 8, 8)
    silent[..., 0, 0] = 0.3  # on at one pixel, at its floor (0) everywhere else
    acts = torch.cat([mask, silent], 1)
    level = torch.tensor([1.0, 0.0])  # the 0.995 levels: the mask's 1, the silent unit's 0
    floor = torch.tensor([0.0, 0.0])
    on = on_map(acts, level, floor)
    assert torch.equal(on[0, 0], mask[0, 0].bool())  # ties at the level count as on
    assert int(on[0, 1].sum()) == 1  # a unit at its floor is on only above it


def test_iou_accumulates_over_images_and_matches_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    on = torch.rand(10, 4, 6, 6, generator=g) > 0.7
    masks = torch.rand(10, 3, 6, 6, generator=g) > 0.6
    tally = IoUTally(4, 3)
    for sl in batches(10, 4):  # 4, 4, 2
        tally.update(on[sl], masks[sl])
    inter = torch.einsum("nuhw,nkhw->uk", on.double(), masks.double())
    # IoU directly, unit by unit and concept by concept
    direct = torch.zeros(4, 3, dtype=torch.float64)
    for u in range(4):
        for k in range(3):
            i = (on[:, u] & masks[:, k]).sum()
            un = (on[:, u] | masks[:, k]).sum()
            direct[u, k] = i / un
    assert torch.allclose(tally.inter, inter)
    assert torch.allclose(tally.iou(), direct, atol=1e-12)
    # summed over images, not the mean of per-image IoUs
    i0 = (on[:, 0] & masks[:, 0]).flatten(1).sum(1)
    per_image = (i0 / (on[:, 0] | masks[:, 0]).flatten(1).sum(1)).mean()
    assert abs(float(tally.iou()[0, 0]) - float(per_image)) > 1e-6
    # the rolled control pairs each image with its batch neighbour's masks
    rolled = torch.zeros(4, 3, dtype=torch.float64)
    for sl in batches(10, 4):
        m = masks[sl].roll(1, dims=0)
        rolled += torch.einsum("nuhw,nkhw->uk", on[sl].double(), m.double())
    assert torch.allclose(tally.inter_rolled, rolled)


def test_batches_never_leave_a_single_image():
    for n in range(2, 40):
        parts = batches(n, 8)
        assert sum(s.stop - s.start for s in parts) == n
        assert all(s.stop - s.start >= 2 for s in parts)


def test_label_units_uses_the_paper_rule():
    iou = torch.tensor([[0.30, 0.10], [0.04, 0.05], [0.02, 0.20]])
    s = label_units(iou, 0.05)
    assert s["labelled"].tolist() == [True, False, True]  # 0.05 is not above 0.05
    assert s["interpretable"] == 2
    assert s["concepts"] == [0, 1]
    assert s["agreement"] == pytest.approx(0.25)


# --- a planted concept unit ----------------------------------------------------------------

PLANTED_UNITS = 32


class PlantedFeatures(nn.Module):
    """z -> 32 maps at 32x32: unit 0 is exactly the mask of a circle placed by z[:, 0:2]; the
    others are smooth random fields that depend on z but not on the circle."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.freq = torch.rand(PLANTED_UNITS - 1, 2, generator=g) * 0.6 + 0.1
        self.mix = torch.randn(PLANTED_UNITS - 1, 6, generator=g)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        grid = (torch.arange(32, dtype=torch.float32) + 0.5) / 32
        cx = 0.3 + 0.4 * torch.sigmoid(z[:, 0])
        cy = 0.3 + 0.4 * torch.sigmoid(z[:, 1])
        half = torch.full((n, 1, 1), 0.14)
        dx = (grid.view(1, 1, -1) - cx.view(n, 1, 1)) / half
        dy = (grid.view(1, -1, 1) - cy.view(n, 1, 1)) / half
        circle = _inside(torch.zeros(n, dtype=torch.long), dx, dy).float()
        phase = z[:, 2:8] @ self.mix.T  # (n, U-1)
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        fields = torch.sin(
            self.freq[None, :, 0, None, None] * xx
            + self.freq[None, :, 1, None, None] * yy
            + phase[..., None, None]
        )
        return torch.cat([circle[:, None], fields], 1)


class PlantedGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = PlantedFeatures()
        self.palette = torch.tensor(list(COLOURS.values()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        f = self.features(z)
        colour = self.palette[(z[:, 8].abs() * 1000).long() % len(COLOURS)]  # (n, 3)
        grey = torch.full_like(colour, 0.5)
        on = (f[:, :1] > 0.5).float()
        rgb = on * colour[..., None, None] + (1 - on) * grey[..., None, None]
        return rgb * 2 - 1


class Planted:
    """The Architecture surface dissection uses, around :class:`PlantedGenerator`."""

    capabilities = frozenset({"layers"})
    latent_dim = 9

    def __init__(self) -> None:
        self.generator = PlantedGenerator().eval()

    def sample_latent(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z):
        return self.generator(z)

    def generator_layers(self):
        return {"features": self.generator.features}


@functools.cache
def shapes():
    return create_dataset("shapes", train_size=64, test_size=64)


@functools.cache
def planted_result(tmp):
    ctx = eval_context(Planted(), shapes(), tmp)
    ev = DissectionExplainer(
        n=200, n_intervention=100, top_k=1, random_repeats=3, batch_size=50, figure=True
    )
    scores = evaluate_and_write(ev, ctx)
    return scores, json.loads((tmp / "dissection.json").read_text())


def test_planted_unit_is_found_labelled_and_causal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    scores, report = planted_result(tmp)
    layer = report["layers"]["features"]
    unit0 = layer["units_detail"][0]
    assert unit0["concept"] == "circle" and unit0["labelled"]
    assert unit0["iou"] >= 0.95
    # random units (smooth fields unrelated to the circle) score near 0
    others = [u["iou"] for u in layer["units_detail"][1:]]
    assert max(others) < 0.1
    assert layer["interpretable"] == 1
    assert scores["interpretable_units"] == 1
    assert scores["dissection_agreement"] == pytest.approx(unit0["iou"])
    # pairing unit 0 with another image's circle: much lower agreement
    assert scores["dissection_agreement_rolled"] < 0.5 * scores["dissection_agreement"]
    # ablating unit 0 removes the circles: ACE is the circle's whole pixel share
    row = report["intervention"]["concepts"][0]
    assert row["concept"] == "circle" and row["units"] == [0]
    assert row["share_before"] > 0.03
    assert scores["ace_ablation"] == pytest.approx(row["share_before"], rel=0.02)
    assert scores["ace_ablation_share"] == pytest.approx(1.0, abs=0.02)
    # one random unit of 32, three draws: none of them is unit 0 for this seed
    assert scores["ace_ablation_random"] < 0.1 * scores["ace_ablation"]
    assert (tmp / "dissection.png").is_file() and (tmp / "dissection-ablation.png").is_file()
    assert report["concepts"] == list(CONCEPTS)


def test_insertion_sets_the_units_inside_the_region_only():
    model = Planted()
    ctx = eval_context(model, shapes(), None)
    z = torch.zeros(2, model.latent_dim)
    z[:, 0] = -6.0  # circles at the top-left end of their range
    z[:, 1] = -6.0
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[18:30, 18:30] = True  # the circle (centre ~9.6 px, radius 4.5 px) lies outside
    value = torch.ones(PLANTED_UNITS)
    before = model.generate(z)
    after = edited(ctx, z, model.generator.features, [0], value, region)
    changed = (after != before).any(1)  # (n, H, W)
    assert changed[:, region].all()  # the object is painted over the whole region
    assert not changed[:, ~region].any()  # nothing else moves
    ablated = edited(ctx, z, model.generator.features, [0])
    assert torch.allclose(ablated, torch.zeros_like(ablated))  # all grey: no circle left


# --- every architecture ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list_architectures())
def test_runs_on_every_architecture(name, tmp_path):
    data = shapes()
    torch.manual_seed(0)
    arch = create_architecture(name, data.spec).eval()
    ctx = eval_context(arch, data, tmp_path)
    ev = DissectionExplainer(
        n=8, n_intervention=4, top_k=2, random_repeats=1, batch_size=4, figure=False
    )
    scores = evaluate_and_write(ev, ctx)
    assert set(scores) == {s.name for s in ev.scores}
    assert all(math.isfinite(v) for v in scores.values())
    report = json.loads((tmp_path / "dissection.json").read_text())
    assert report["layers"] and report["best_layer"] in report["layers"]
