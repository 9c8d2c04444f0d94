"""The leaderboard's figures: copied from the store's artifacts as small PNGs, with captions
that say what each shows, and a grid of real images to compare the samples with.

Sample grids are copied as 256-colour palette PNGs (losslessly where they have at most 256
colours; the smoke models' colour grids have a few thousand, and 256 without dithering is
indistinguishable at their size); explainers' figures (matplotlib plots) are flattened on
white and quantised to a ``FIGURE_COLOURS`` palette without dithering, which keeps them sharp
at about a third of their RGBA size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

FIGURE_COLOURS = 64


@dataclass
class Figure:
    """One figure of the gallery."""

    label: str  # the row it belongs to (architecture, control, real data)
    path: str  # relative to the leaderboard folder
    caption: str
    grid: bool  # a sample grid (shown pixelated, embedded in README.md)
    control: bool  # of an untrained control or real data: behind a click on the page
    evaluator: str = ""


def store_png(src: Path, dst: Path, grid: bool) -> None:
    """Copy ``src`` to ``dst`` as a small PNG (see the module doc); a copy newer than its
    source is kept as it is."""
    from PIL import Image

    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        with Image.open(dst) as done:
            if done.mode in ("P", "L"):
                return  # made small by an earlier render
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            flat = Image.new("RGB", im.size, (255, 255, 255))
            flat.paste(im, mask=im.split()[-1])
            im = flat
        elif im.mode != "L":
            im = im.convert("RGB")
        colours = im.getcolors(256 if grid else FIGURE_COLOURS)
        if im.mode == "L":
            out = im
        elif colours is not None:
            out = im.quantize(colors=len(colours), dither=Image.Dither.NONE)
        else:
            out = im.quantize(
                colors=256 if grid else FIGURE_COLOURS,
                method=Image.Quantize.MEDIANCUT,
                dither=Image.Dither.NONE,
            )
    tmp = dst.with_name(dst.name + ".tmp")
    out.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, dst)


def real_grid(dataset: str, params: dict, path: Path, n: int) -> bool:
    """Write ``n`` held-out real images of ``dataset`` as a grid drawn like the sample grids;
    False when the dataset cannot be loaded here (a local dataset whose files are elsewhere)."""
    from torchvision.utils import save_image

    from ganbench.core.errors import GanbenchError
    from ganbench.core.registry import create_dataset

    try:
        images = create_dataset(dataset, **params).split("test").images[:n]
    except (GanbenchError, OSError):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    save_image(
        images.float().clamp(-1, 1),
        str(tmp),
        nrow=int(math.ceil(math.sqrt(len(images)))),
        normalize=True,
        value_range=(-1, 1),
        padding=1,
        pad_value=0.5,
    )
    store_png(tmp, path, grid=True)
    tmp.unlink()
    return True


def explainer_caption(evaluator: str, file_name: str) -> str:
    """What an explainer's figure shows, from the explainer's one-line doc and the file name."""
    from ganbench.core.registry import evaluator_registry

    stem = file_name.rsplit(".", 1)[0]
    try:
        doc = (evaluator_registry(evaluator).get(evaluator).__doc__ or "").strip()
    except KeyError:
        doc = ""
    first = " ".join(doc.split("\n\n")[0].replace("``", "").split()).split(". ")[0].rstrip(".")
    what = stem.replace("-", " ").replace("_", " ")
    return f"{evaluator} ({what}): {first}" if first else f"{evaluator} ({what})"
