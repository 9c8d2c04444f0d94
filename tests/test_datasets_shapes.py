"""The procedural shapes dataset: determinism, independent factors, masks that match the pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from ganbench.core.errors import ConfigError
from ganbench.core.registry import create_dataset, get_dataset
from ganbench.datasets.shapes import BACKGROUNDS, COLOURS, CONCEPTS, SHAPES, render_shapes
from ganbench.run.train import train_config
from ganbench.run.trials import trial_key

N_SHAPES = len(SHAPES)
COLOUR_CHANNELS = slice(1 + N_SHAPES, 1 + N_SHAPES + len(COLOURS))
SHAPE_CHANNELS = slice(1, 1 + N_SHAPES)


@pytest.fixture(scope="module")
def big():
    return render_shapes(12_000, 32, seed=3)


def test_same_seed_same_images_other_seed_other_images():
    a, b = render_shapes(300, 32, seed=7), render_shapes(300, 32, seed=7)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = render_shapes(300, 32, seed=8)
    assert not torch.equal(a["images"], c["images"])


def test_dataset_splits_and_spec():
    ds = create_dataset("shapes", train_size=200, test_size=50, image_size=64)
    train, test = ds.split("train"), ds.split("test")
    assert train.images.shape == (200, 3, 64, 64) and test.images.shape == (50, 3, 64, 64)
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert train.extras["masks"].shape == (200, len(CONCEPTS), 64, 64)
    assert train.extras["factors"].shape == (200, 6)
    assert torch.equal(train.labels, train.extras["factors"][:, 0].long())
    spec = ds.spec
    assert spec.factors == ("shape", "colour", "x", "y", "scale", "background")
    assert spec.factor_levels == (3, 6, 0, 0, 0, 4)
    assert {"labels", "masks", "factors", "segmenter", "domain"} <= spec.features
    # train and test are disjoint draws of one stream, not the same images
    assert not torch.equal(train.images[:50], test.images)


def test_factor_ranges(big):
    f = big["factors"].numpy()
    assert set(np.unique(f[:, 0])) == {0, 1, 2}
    assert set(np.unique(f[:, 1])) == set(range(len(COLOURS)))
    assert set(np.unique(f[:, 5])) == set(range(len(BACKGROUNDS)))
    assert f[:, 4].min() >= 0.25 and f[:, 4].max() <= 0.5
    for col in (2, 3):  # centres keep the largest object inside the image
        assert f[:, col].min() >= 0.25 and f[:, col].max() <= 0.75


def _binned(f: np.ndarray) -> list[np.ndarray]:
    """Categorical factors as they are; continuous ones cut into quartiles."""
    out = []
    for j in range(f.shape[1]):
        col = f[:, j]
        if j in (0, 1, 5):
            out.append(col.astype(int))
        else:
            out.append(np.digitize(col, np.quantile(col, [0.25, 0.5, 0.75])))
    return out


def _smallest_pair_p(f: np.ndarray) -> float:
    cols = _binned(f)
    ps = []
    for a, b in itertools.combinations(range(len(cols)), 2):
        table = np.zeros((cols[a].max() + 1, cols[b].max() + 1))
        np.add.at(table, (cols[a], cols[b]), 1)
        ps.append(chi2_contingency(table)[1])
    return min(ps)


def test_factors_are_independent(big):
    """Chi-square tests of every pair of factors: the joint matches the product of marginals.

    With 15 pairs, the smallest p-value of truly independent factors falls below 0.001 with
    probability about 1.5%; the seed is fixed, so this is deterministic, and the same test
    applied to factors with a planted dependence must reject.
    """
    f = big["factors"].numpy()
    assert _smallest_pair_p(f) > 1e-3
    dependent = f.copy()
    dependent[:, 4] = np.where(dependent[:, 0] == 1, dependent[:, 4] * 0.9, dependent[:, 4])
    assert _smallest_pair_p(dependent) < 1e-6


def test_masks_are_consistent_with_the_pixels(big):
    images, masks = big["images"][:3000], big["masks"][:3000]
    background = masks[:, 0]
    shapes = masks[:, SHAPE_CHANNELS].sum(1)
    colours = masks[:, COLOUR_CHANNELS].sum(1)
    # every object pixel lies in exactly one shape mask and one colour mask; background in none
    assert torch.equal(shapes, (~background).long())
    assert torch.equal(colours, (~background).long())
    # and it is painted exactly its colour; background pixels are one of the backgrounds
    rgb = (images + 1) / 2
    palette = torch.tensor(list(COLOURS.values()))
    colour_index = masks[:, COLOUR_CHANNELS].float().argmax(1)
    want = palette[colour_index].permute(0, 3, 1, 2)
    obj = (~background).unsqueeze(1).expand_as(rgb)
    assert torch.allclose(rgb[obj], want[obj], atol=1e-6)
    bgs = torch.tensor(list(BACKGROUNDS.values()))
    pixels = rgb.permute(0, 2, 3, 1)[background]
    assert ((pixels[:, None] - bgs[None]).abs().amax(2).min(1).values < 1e-6).all()


def test_masks_agree_with_the_factors(big):
    f, masks = big["factors"][:2000], big["masks"][:2000]
    present_shape = masks[:, SHAPE_CHANNELS].flatten(2).any(2).float().argmax(1)
    present_colour = masks[:, COLOUR_CHANNELS].flatten(2).any(2).float().argmax(1)
    assert torch.equal(present_shape, f[:, 0].long())
    assert torch.equal(present_colour, f[:, 1].long())
    # object area grows with the scale factor as area ~ scale^2
    area = (~masks[:, 0]).flatten(1).sum(1).float()
    squares = f[:, 0] == 1
    side = f[squares, 4] * 32
    assert torch.corrcoef(torch.stack([area[squares], side**2]))[0, 1] > 0.99
    # the object's centroid follows x and y
    ys, xs = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
    obj = (~masks[:, 0]).float()
    cx = (obj * xs).sum((1, 2)) / obj.sum((1, 2)) / 32
    assert (cx - f[:, 2]).abs().max() < 0.03


def test_two_objects_occlude_and_have_distinct_colours():
    d = render_shapes(2000, 32, seed=1, objects=2)
    f, masks = d["factors"], d["masks"]
    assert f.shape[1] == 11
    assert (f[:, 1] != f[:, 6]).all()
    # still one shape and one colour per object pixel, with occlusion resolved
    bg = masks[:, 0]
    assert torch.equal(masks[:, SHAPE_CHANNELS].sum(1), (~bg).long())
    assert torch.equal(masks[:, COLOUR_CHANNELS].sum(1), (~bg).long())
    # the second object is fully visible: its colour covers its whole shape
    c2 = f[:, 6].long()
    visible2 = masks[torch.arange(2000), 1 + N_SHAPES + c2].flatten(1).sum(1)
    assert (visible2 > 0).all()


def test_bad_parameters_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="objects must be 1 or 2"):
        create_dataset("shapes", objects=3).split("train")
    with pytest.raises(ConfigError, match="min_scale"):
        create_dataset("shapes", min_scale=0.6, max_scale=0.5).split("train")
    with pytest.raises(ConfigError, match="unknown key 'colours'"):
        create_dataset("shapes", colours=3)


def test_the_dataset_version_is_part_of_every_key_that_uses_it(monkeypatch):
    """Keys name the declared version, not the source: a bump (which the golden fingerprints
    demand when shapes.py computes other images) changes the train keys on it."""
    cls = get_dataset("shapes")
    train = {"batch_size": 8, "log_every": 5, "grid_size": 4}
    cfg = train_config("dcgan", {}, "shapes", {}, 0, 10, train, "cpu")
    assert cfg["dataset"] == {"name": "shapes", "version": cls.version, "params": {}}
    monkeypatch.setattr(cls, "version", cls.version + "-bumped")
    bumped = train_config("dcgan", {}, "shapes", {}, 0, 10, train, "cpu")
    assert trial_key(bumped) != trial_key(cfg)
