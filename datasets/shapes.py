"""Procedural shapes with known ground truth: every factor recorded, every concept masked.

Each image is a background colour and one object (or two, the second drawn on top): a
circle, a square or an upward triangle, in one of six colours, at a position and scale
drawn independently of everything else. Edges are hard (no antialiasing), so the masks
are exact: a pixel belongs to an object exactly when it is painted in that object's
colour. The whole dataset is a pure function of its parameters and its ``version``: a change
to the generator that moves an image must bump the version (the golden fingerprints catch a
forgotten bump).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.core.errors import ConfigError
from ganbench.core.registry import register_dataset

from .base import DatasetSpec, ImageDatasetBase, TensorImages
from .segmenters import Segmenter, moments

SHAPES = ("circle", "square", "triangle")
# Saturated object colours and muted backgrounds: every object colour is at least 0.47 away
# (RGB in [0, 1], Euclidean) from every background, so colour alone separates object from
# background, for real images exactly and for generated ones with a wide margin.
COLOURS = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.20, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.20, 0.85),
    "cyan": (0.10, 0.80, 0.85),
}
BACKGROUNDS = {
    "black": (0.05, 0.05, 0.05),
    "grey": (0.50, 0.50, 0.50),
    "white": (0.95, 0.95, 0.95),
    "brown": (0.45, 0.30, 0.15),
}
CONCEPTS = ("background", *SHAPES, *COLOURS)
OBJECT_FACTORS = ("shape", "colour", "x", "y", "scale")


def _inside(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Which pixels each object covers; dx, dy are offsets from its centre in half-sizes."""
    circle = dx * dx + dy * dy <= 1.0
    square = (dx.abs() <= 1.0) & (dy.abs() <= 1.0)
    triangle = (dy <= 1.0) & (dx.abs() <= (dy + 1.0) / 2.0)  # apex up at dy = -1
    s = shape.view(-1, 1, 1)
    return torch.where(s == 0, circle, torch.where(s == 1, square, triangle))


def render_shapes(
    n: int,
    image_size: int = 32,
    seed: int = 0,
    objects: int = 1,
    min_scale: float = 0.25,
    max_scale: float = 0.5,
    chunk: int = 4096,
) -> dict[str, torch.Tensor]:
    """``n`` images with masks and factors, vectorised over the batch.

    Factors per object: shape (0..2), colour (0..5), x and y (the centre, as a fraction of
    the image side), scale (the object's size as a fraction of the image side); then the
    background colour (0..3). Centres range over [max_scale/2, 1 - max_scale/2], so every
    object fits inside the image at every scale and position does not depend on scale.
    """
    if objects not in (1, 2):
        raise ConfigError(f"dataset 'shapes': objects must be 1 or 2, got {objects}")
    if not 0 < min_scale <= max_scale < 1:
        raise ConfigError(
            f"dataset 'shapes': need 0 < min_scale <= max_scale < 1, got {min_scale}, {max_scale}"
        )
    rng = np.random.default_rng(seed)
    per_object = _draw_objects(rng, n, objects, min_scale, max_scale)
    background = rng.integers(0, len(BACKGROUNDS), n)
    columns = [c for obj in per_object for c in obj] + [background]
    factors = torch.from_numpy(np.stack(columns, axis=1).astype(np.float32))
    images = torch.empty(n, 3, image_size, image_size)
    masks = torch.zeros(n, len(CONCEPTS), image_size, image_size, dtype=torch.bool)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        images[sl], masks[sl] = _paint(per_object, background, sl, image_size)
    return {
        "images": images,
        "masks": masks,
        "factors": factors,
        "labels": torch.from_numpy(per_object[0][0].astype(np.int64)),
    }


def _draw_objects(
    rng: np.random.Generator, n: int, objects: int, min_scale: float, max_scale: float
) -> list[tuple[np.ndarray, ...]]:
    """Each object's factors for n images, (shape, colour, x, y, scale), drawn in that order,
    object after object."""
    lo, hi = max_scale / 2, 1 - max_scale / 2
    per_object: list[tuple[np.ndarray, ...]] = []
    for k in range(objects):
        shape = rng.integers(0, len(SHAPES), n)
        colour = rng.integers(0, len(COLOURS), n)
        if k == 1:  # never the first object's colour (colour tells the two apart)
            colour = (per_object[0][1] + rng.integers(1, len(COLOURS), n)) % len(COLOURS)
        x, y = rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)
        scale = rng.uniform(min_scale, max_scale, n)
        per_object.append((shape, colour, x, y, scale))
    return per_object


def _paint(
    per_object: list[tuple[np.ndarray, ...]], background: np.ndarray, sl: slice, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images in [-1, 1] and the concept masks of the samples in ``sl``: the background,
    then each object over what came before (a later object occludes what it covers)."""
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32)
    bg_palette = torch.tensor(list(BACKGROUNDS.values()), dtype=torch.float32)
    grid = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size  # pixel centres
    b = sl.stop - sl.start
    img = bg_palette[torch.from_numpy(background[sl])].view(b, 3, 1, 1)
    img = img.expand(b, 3, image_size, image_size).clone()
    covered = []
    for shape, colour, x, y, scale in per_object:
        half = torch.from_numpy(scale[sl] / 2).float().view(b, 1, 1)
        dx = (grid.view(1, 1, -1) - torch.from_numpy(x[sl]).float().view(b, 1, 1)) / half
        dy = (grid.view(1, -1, 1) - torch.from_numpy(y[sl]).float().view(b, 1, 1)) / half
        inside = _inside(torch.from_numpy(shape[sl]), dx, dy)
        for earlier in covered:  # a later object occludes what it covers
            earlier &= ~inside
        covered.append(inside)
        rgb = palette[torch.from_numpy(colour[sl])].view(b, 3, 1, 1)
        img = torch.where(inside.unsqueeze(1), rgb, img)
    masks = torch.zeros(b, len(CONCEPTS), image_size, image_size, dtype=torch.bool)
    for (shape, colour, *_), visible in zip(per_object, covered, strict=True):
        idx = torch.arange(b)
        masks[idx, 1 + torch.from_numpy(shape[sl])] |= visible
        masks[idx, 1 + len(SHAPES) + torch.from_numpy(colour[sl])] |= visible
    masks[:, 0] = ~torch.stack(covered).any(0)
    return img * 2 - 1, masks


class ShapesSegmenter(Segmenter):
    """Rule-based segmenter of the ``shapes`` domain: colour by nearest palette entry, shape by moments.

    Each pixel takes the nearest of the object and background colours. For every object
    colour present in an image, the shape of that colour's region is read from two
    scale-free moment ratios, which tolerate the ragged edges of small or generated shapes
    better than a bounding box does: a triangle's vertical skewness is about 0.57 in
    magnitude (circles and squares: 0), and E[x²y²] / (Var x · Var y) is 1 for a square
    (its coordinates are independent) and 2/3 for a disc. On rendered 32x32 shapes the
    measured ranges are: triangle |skew| >= 0.54, circle and square <= 0.11; square ratio
    1.0, circle <= 0.85. Isolated stray pixels are dropped before the moments are taken;
    the concept masks keep every pixel of the colour.
    """

    def __init__(
        self, min_pixels: int = 4, skew_threshold: float = 0.3, ratio_threshold: float = 0.92
    ):
        self.concepts = CONCEPTS
        self.n_shapes = len(SHAPES)
        self.palette = torch.tensor([*COLOURS.values(), *BACKGROUNDS.values()], dtype=torch.float32)
        self.n_colours = len(COLOURS)
        self.min_pixels = min_pixels
        self.skew_threshold = skew_threshold
        self.ratio_threshold = ratio_threshold

    def classify(self, regions: torch.Tensor) -> torch.Tensor:
        """Shape index (0 circle, 1 square, 2 triangle) per region (..., H, W); -1 when too small."""
        lead = regions.shape[:-2]
        r = regions.reshape(-1, 1, *regions.shape[-2:]).float()
        # drop stray pixels (fewer than 2 of 8 neighbours alike); an opening would also
        # erode a small triangle's apex, and with it the skewness that identifies it
        neighbours = F.avg_pool2d(r, 3, 1, 1, count_include_pad=True) * 9 - r
        cleaned = (r * (neighbours >= 2)).squeeze(1)
        keep = cleaned.sum((-2, -1)) >= self.min_pixels
        use = torch.where(keep[:, None, None], cleaned, r.squeeze(1))
        # an object has a core that survives a 3x3 erosion; the thin fringe that blur leaves
        # between an object and its background (a mixed colour) has none
        core = -F.max_pool2d(-r, 3, 1, 1).squeeze(1)
        solid = core.sum((-2, -1)) >= 1
        m = moments(use)
        var = (m["var_x"] * m["var_y"]).clamp_min(1e-6)
        skew = m["skew_y"] / m["var_y"].clamp_min(1e-6) ** 1.5
        ratio = m["xxyy"] / var
        shape = torch.where(ratio > self.ratio_threshold, 1, 0)
        shape = torch.where(skew.abs() > self.skew_threshold, 2, shape)
        return torch.where((m["area"] >= self.min_pixels) & solid, shape, -1).view(lead)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != 3:
            raise ValueError(
                f"the shapes segmenter needs RGB images, got {images.shape[1]} channels"
            )
        rgb = (images.float() + 1) / 2
        pal = self.palette.to(images.device)
        # nearest palette colour: argmin of |p|^2 - 2 x.p (|x|^2 is the same for every p)
        score = torch.einsum("nchw,pc->nphw", rgb, pal) * -2 + (pal**2).sum(1).view(1, -1, 1, 1)
        nearest = score.argmin(1)
        colour = torch.stack([nearest == c for c in range(self.n_colours)], 1)  # (N, 6, H, W)
        shape_of = self.classify(colour)  # (N, 6)
        shapes = torch.stack(
            [(colour & (shape_of == s)[..., None, None]).any(1) for s in range(self.n_shapes)], 1
        )
        background = (nearest >= self.n_colours).unsqueeze(1)
        return torch.cat([background, shapes, colour], 1)


@register_dataset("shapes")
class Shapes(ImageDatasetBase):
    """Procedural coloured shapes on coloured backgrounds, with exact concept masks and factors."""

    version = "1"
    defaults = {
        "image_size": 32,
        "train_size": 8000,
        "test_size": 2000,
        "objects": 1,
        "min_scale": 0.25,
        "max_scale": 0.5,
        "seed": 0,
    }
    # no shift augmentation: position is one of the factors the network must read
    domain_training = {"epochs": 4, "shift": 0}
    level_names = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        p = self.params
        if p["image_size"] < 8 or p["train_size"] < 1 or p["test_size"] < 1:
            raise ConfigError(
                "dataset 'shapes': image_size must be >= 8 and train_size, test_size >= 1"
            )
        data = render_shapes(
            p["train_size"] + p["test_size"],
            p["image_size"],
            p["seed"],
            p["objects"],
            p["min_scale"],
            p["max_scale"],
        )
        out = {}
        for which, sl in (
            ("train", slice(0, p["train_size"])),
            ("test", slice(p["train_size"], None)),
        ):
            out[which] = TensorImages(
                data["images"][sl].contiguous(),
                data["labels"][sl],
                {"masks": data["masks"][sl], "factors": data["factors"][sl]},
            )
        return out

    def split(self, which: str) -> TensorImages:
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {which!r}")
        return self._splits[which]

    @property
    def factor_names(self) -> tuple[str, ...]:
        names = list(OBJECT_FACTORS)
        if self.params["objects"] == 2:
            names += [f"{f}2" for f in OBJECT_FACTORS]
        return (*names, "background")

    @property
    def spec(self) -> DatasetSpec:
        levels = {"shape": len(SHAPES), "colour": len(COLOURS), "background": len(BACKGROUNDS)}
        names = self.factor_names
        return DatasetSpec(
            name=self.name,
            version=self.version,
            image_size=self.params["image_size"],
            channels=3,
            num_classes=len(SHAPES),
            has_masks=True,
            factors=names,
            factor_levels=tuple(levels.get(f.rstrip("2"), 0) for f in names),
            train_size=self.params["train_size"],
            test_size=self.params["test_size"],
            concepts=CONCEPTS,
            has_segmenter=True,
        )

    def segmenter(self, domain_network=None):
        return ShapesSegmenter()
