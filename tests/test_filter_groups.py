"""The filter_groups explainer on planted truth: coherent groups score high, random ones do not."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch.nn import functional as F

from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import create_dataset
from ganbench.explainers.filter_groups import (
    FilterGroupsExplainer,
    pairwise_iou,
    threshold_maps,
    within_across,
)

PLANTED = ("circle", "square", "triangle", "red", "blue")  # one concept per group
PER_GROUP = 6


@functools.cache
def shapes():
    return create_dataset("shapes", image_size=32, train_size=512, test_size=64)


class PlantedGroups:
    """A hand-built model with the ``filter_groups`` capability whose truth is known.

    A latent picks one real shapes image; filter j of group c fires on that image's mask of
    concept PLANTED[c], at 16x16, with 30% of the mask's cells dropped independently per
    filter (so filters of a group agree often but not always). ``coherent=False`` reports
    a random partition of the same filters, with the same group sizes.
    """

    def __init__(self, coherent: bool, seed: int = 0) -> None:
        split = shapes().split("train")
        concepts = shapes().spec.concepts
        self.images = split.images
        masks = split.extras["masks"][:, [concepts.index(c) for c in PLANTED]].float()
        cells = F.avg_pool2d(masks, 2)  # (N, C, 16, 16)
        g = torch.Generator().manual_seed(seed)
        truth = torch.arange(len(PLANTED)).repeat_interleave(PER_GROUP)
        keep = torch.rand(len(cells), len(truth), 16, 16, generator=g) > 0.3
        self.maps = cells[:, truth] * keep  # (N, M, 16, 16)
        self.truth = truth
        self.q = truth if coherent else truth[torch.randperm(len(truth), generator=g)]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, len(self.images), (n, 1), generator=generator).float()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.images[z[:, 0].long()]

    def partition(self) -> torch.Tensor:
        return self.q.clone()

    def filter_maps(self, z: torch.Tensor) -> torch.Tensor:
        return self.maps[z[:, 0].long()]

    def group_maps(self, z: torch.Tensor) -> torch.Tensor:
        maps = self.filter_maps(z)
        member = F.one_hot(self.q, len(PLANTED)).float()
        return torch.einsum("bmhw,mc->bchw", maps, member / member.sum(0))


def evaluate(model, tmp_path, n: int = 128, **params):
    ctx = EvalContext(
        model=model, dataset=shapes(), device=torch.device("cpu"), seed=0, artifact_dir=tmp_path
    )
    return evaluate_and_write(FilterGroupsExplainer(n=n, **params), ctx)


def test_iou_helpers_on_hand_made_masks():
    a = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    iou = pairwise_iou(a, a)
    expected = torch.tensor([[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(iou, expected)
    within, across = within_across(iou, torch.tensor([0, 0, 1]))
    assert within == pytest.approx(1 / 3) and across == 0.0
    # each map keeps the cells above its own quantile: here the top quarter of 4x4 = 4 cells
    maps = torch.arange(32.0).reshape(1, 2, 4, 4)
    maps[0, 1] = maps[0, 1].flip(-1)
    kept = threshold_maps(maps, 4, 0.75)
    assert kept.sum(1).tolist() == [4, 4]
    assert kept[0].reshape(4, 4)[3].all() and kept[1].reshape(4, 4)[3].all()


@pytest.mark.parametrize("quantile", [0.0, 1.0])
def test_quantile_outside_the_open_unit_interval_fails_when_the_explainer_is_made(quantile):
    with pytest.raises(ConfigError, match=r"quantile must be in \(0, 1\)"):
        FilterGroupsExplainer(quantile=quantile)


def test_coherent_groups_agree_within_and_match_their_concepts(tmp_path):
    scores = evaluate(PlantedGroups(coherent=True), tmp_path)
    assert set(scores) == {s.name for s in FilterGroupsExplainer.scores}
    assert scores["fg_iou_within"] > 0.4
    assert scores["fg_iou_ratio"] > 3 and scores["fg_iou_gap"] > 0.3
    # each group matches its planted concept, well above any other; the IoU stays below 1
    # because 16x16 maps upsampled to 32x32 blur the small objects' edges
    assert scores["fg_concept_iou"] > 0.45
    assert scores["fg_groups"] == 5 and scores["fg_concepts_distinct"] == 5
    report = json.loads((tmp_path / "filter-groups.json").read_text())
    assert [report["groups"][str(c)]["concept"] for c in range(5)] == list(PLANTED)
    for group in report["groups"].values():
        runner_up = sorted(group["iou_by_concept"].values())[-2]
        assert group["iou"] > runner_up + 0.25
    assert (tmp_path / "filter-groups.png").stat().st_size > 1000


def test_a_random_partition_scores_near_chance(tmp_path):
    coherent = evaluate(PlantedGroups(coherent=True), tmp_path, figure=False)
    scores = evaluate(PlantedGroups(coherent=False), tmp_path, figure=False)
    assert 0.7 < scores["fg_iou_ratio"] < 1.4
    assert abs(scores["fg_iou_gap"]) < 0.05
    # the same filters: all pairs average the same either way
    pairs_within = 5 * PER_GROUP * (PER_GROUP - 1)
    pairs_across = 5 * PER_GROUP * 4 * PER_GROUP
    total = {
        name: (s["fg_iou_within"] * pairs_within + s["fg_iou_across"] * pairs_across)
        for name, s in (("coherent", coherent), ("random", scores))
    }
    assert total["random"] == pytest.approx(total["coherent"], rel=1e-5)
    # mixed groups' mean maps blur several concepts: alignment falls
    assert scores["fg_concept_iou"] < coherent["fg_concept_iou"] - 0.2


def test_explainer_runs_on_ifgan(tmp_path):
    from ganbench.core.registry import create_architecture

    torch.manual_seed(0)
    arch = create_architecture("ifgan", shapes().spec, width=8, groups=4, fit_samples=32)
    arch.train_step(shapes().split("train").images[:16])
    arch.eval()
    scores = evaluate(arch, tmp_path, n=32)
    assert 0 <= scores["fg_iou_within"] <= 1 and 0 <= scores["fg_iou_across"] <= 1
    assert 0 <= scores["fg_concept_iou"] <= 1 and scores["fg_groups"] == 4
    assert (
        FilterGroupsExplainer.not_applicable_reason(
            arch.capabilities, shapes().spec.features, "ifgan"
        )
        is None
    )
