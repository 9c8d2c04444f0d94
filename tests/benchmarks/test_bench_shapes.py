"""Shapes generation and segmentation: the vectorised code vs a plain per-image reference.

The reference draws each image with PIL (ImageDraw, the way a first version of such a
dataset is usually written), one at a time, and derives its masks from the drawing.
`make bench` prints both in group "shapes-render" for 2,000 images at 32x32, on one
thread; scale by 5 for the issue's 10,000-image goal ("a few seconds on one core").
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ganbench.datasets.shapes import BACKGROUNDS, COLOURS, ShapesSegmenter, render_shapes

N = 2000
SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def pil_reference(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One image at a time with PIL: images (n, H, W, 3) uint8 and object masks (n, H, W)."""
    rng = np.random.default_rng(seed)
    colours = [tuple(int(255 * c) for c in rgb) for rgb in COLOURS.values()]
    backgrounds = [tuple(int(255 * c) for c in rgb) for rgb in BACKGROUNDS.values()]
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    for i in range(n):
        shape, colour, bg = rng.integers(0, 3), rng.integers(0, 6), rng.integers(0, 4)
        x, y = rng.uniform(0.25, 0.75, 2) * size
        half = rng.uniform(0.25, 0.5) * size / 2
        img = Image.new("RGB", (size, size), backgrounds[bg])
        mask = Image.new("L", (size, size), 0)
        box = (x - half, y - half, x + half, y + half)
        for canvas, fill in ((ImageDraw.Draw(img), colours[colour]), (ImageDraw.Draw(mask), 255)):
            if shape == 0:
                canvas.ellipse(box, fill=fill)
            elif shape == 1:
                canvas.rectangle(box, fill=fill)
            else:
                canvas.polygon(
                    [(x, y - half), (x - half, y + half), (x + half, y + half)], fill=fill
                )
        images[i] = np.asarray(img)
        masks[i] = np.asarray(mask) > 0
    return images, masks


@pytest.mark.benchmark(group="shapes-render")
def test_render_vectorised(benchmark):
    out = benchmark.pedantic(render_shapes, args=(N, SIZE), rounds=3, iterations=1)
    assert out["images"].shape == (N, 3, SIZE, SIZE)


@pytest.mark.benchmark(group="shapes-render")
def test_render_pil_per_image_reference(benchmark):
    images, _ = benchmark.pedantic(pil_reference, args=(N, SIZE), rounds=3, iterations=1)
    assert images.shape == (N, SIZE, SIZE, 3)


@pytest.mark.benchmark(group="shapes-segment")
def test_segment_shapes(benchmark):
    images = render_shapes(N, SIZE, seed=1)["images"]
    seg = ShapesSegmenter()
    masks = benchmark.pedantic(seg.segment, args=(images,), rounds=3, iterations=1)
    assert masks.shape[0] == N
