"""The leaderboard's figures: copied from the store's artifacts as small PNGs, with captions
that say what each shows, and a grid of real images to compare the samples with.

Sample grids are copied as 256-colour palette PNGs (losslessly where they have at most 256
colours; the smoke models' colour grids have a few thousand, and 256 without dithering is
indistinguishable at their size); explainers' figures (matplotlib plots) are flattened on
white and quantised to a ``FIGURE_COLOURS`` palette without dithering, which keeps them sharp
at about a third of their RGBA size.

Only the first seed's figures are copied (the gallery shows one seed), into
``figures/<matrix>-<device>/<dataset>/``, prefixed by their row; a render removes the files
there that no section shows any more (:func:`prune_figures`).
"""

from __future__ import annotations

import math
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torchvision.utils import save_image

from ganbench.board.view import MatrixView
from ganbench.core.errors import GanbenchError
from ganbench.core.evaluation import figure_patterns
from ganbench.core.registry import create_dataset, evaluator_registry
from ganbench.run.layout import SAMPLE_GRID
from ganbench.run.trials import CHECKPOINT

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
    stem = file_name.rsplit(".", 1)[0]
    try:
        doc = (evaluator_registry(evaluator).get(evaluator).__doc__ or "").strip()
    except KeyError:
        doc = ""
    first = " ".join(doc.split("\n\n")[0].replace("``", "").split()).split(". ")[0].rstrip(".")
    what = stem.replace("-", " ").replace("_", " ")
    return f"{evaluator} ({what}): {first}" if first else f"{evaluator} ({what})"


def within(root: Path, path: Path) -> bool:
    """Whether ``path`` stays inside ``root`` (names are checked where they enter, bundles
    included; this keeps any file the renderer writes under ``leaderboard/`` regardless)."""
    return path.resolve().is_relative_to(root.resolve())


def copy_sample_grids(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], str]:
    """Copy the first seed's sample grids into figures/ (:func:`store_png`), and draw a grid
    of real images per dataset; returns (dataset, arch, reference, seed) -> relative path,
    the real grid under (dataset, "real data", "real", 0)."""
    figures = {}
    for t in view.trials:
        lab = t.labels
        if t.kind != "train" or lab["reference"] == CHECKPOINT or not view.first_seed(lab):
            continue
        rel = (
            Path("figures")
            / view.slug
            / lab["dataset"]
            / f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}.png"
        )
        src = store_artifacts / t.key / SAMPLE_GRID
        dst = out / rel
        if not within(out, dst):
            continue
        if src.is_file():
            store_png(src, dst, grid=True)
        if dst.is_file():
            figures[(lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])] = (
                rel.as_posix()
            )
    for dataset in view.cfg.datasets:
        rel = Path("figures") / view.slug / dataset / "real-data.png"
        if not any(k[0] == dataset for k in figures):
            continue
        if (out / rel).is_file() or real_grid(
            dataset,
            view.cfg.dataset_params.get(dataset, {}),
            out / rel,
            view.cfg.train["grid_size"],
        ):
            figures[(dataset, "real data", "real", 0)] = rel.as_posix()
    return figures


def _copied_artifacts(
    view: MatrixView,
    store_artifacts: Path,
    out: Path,
    patterns: Callable[[dict], tuple[str, ...]],
    keep: Callable[[dict], bool],
) -> Iterator[tuple[dict, Path]]:
    """Copy the files matching ``patterns(labels)`` that finished evaluations
    (``keep(labels)``) wrote into figures/, prefixed by their row (PNGs made small by
    ``store_png``); yields (labels, copied path), copies from an earlier render included (they
    stay usable when only the bundle is left)."""
    for t in view.trials:
        lab = t.labels
        if t.kind != "evaluate" or not keep(lab):
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            continue
        folder = out / "figures" / view.slug / lab["dataset"]
        prefix = f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}-{lab['evaluator']}-"
        if not within(out, folder / prefix):
            continue
        names = patterns(lab)
        for src in _matching(store_artifacts / t.key, "", names):
            dst = folder / (prefix + src.name)
            if src.suffix == ".png":
                store_png(src, dst, grid=False)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        for dst in _matching(folder, prefix, names):
            yield lab, dst


def _matching(folder: Path, prefix: str, patterns: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` named ``prefix`` + one of ``patterns``, sorted."""
    if not folder.is_dir():
        return []
    return sorted({path for p in patterns for path in folder.glob(prefix + p)})


def declared_figures(labels: dict) -> tuple[str, ...]:
    """The PNGs the evaluator of a row declares (``Evaluator.figures``); none for an evaluator
    no longer registered."""
    name = labels.get("evaluator")
    try:
        return figure_patterns(evaluator_registry(name).get(name))
    except KeyError:
        return ()


def copy_explainer_figures(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], list[tuple[str, str]]]:
    """Copy the PNGs each explainer declares (``Evaluator.figures``) for each row's first seed
    (the one the gallery shows) into figures/; (dataset, arch, reference, seed) ->
    [(evaluator, path)]."""
    figures: dict[tuple[str, str, str, int], list[tuple[str, str]]] = defaultdict(list)
    explainers = set(view.cfg.explainers)
    for lab, dst in _copied_artifacts(
        view,
        store_artifacts,
        out,
        declared_figures,
        lambda lab: (
            lab.get("evaluator") in explainers
            and lab["reference"] != CHECKPOINT
            and view.first_seed(lab)
        ),
    ):
        key = (lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])
        figures[key].append((lab["evaluator"], dst.relative_to(out).as_posix()))
    return figures


def copy_per_class_tables(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, int], list[tuple[str, Path]]]:
    """Copy the per-class tables explainers wrote (``*_per_class.json``, e.g. InfoGAN's code
    values matched to classes) beside the figures; (dataset, arch, seed) -> [(evaluator, path)]
    for the trained rows."""
    found: dict[tuple[str, str, int], list[tuple[str, Path]]] = defaultdict(list)
    for lab, dst in _copied_artifacts(
        view,
        store_artifacts,
        out,
        lambda lab: ("*_per_class.json",),
        lambda lab: lab["reference"] == "trained",
    ):
        found[(lab["dataset"], lab["architecture"], lab["seed"])].append((lab["evaluator"], dst))
    return found


def prune_figures(folder: Path, used: Iterable[Path]) -> None:
    """Remove the files under one matrix's figures/ that are not in ``used`` (what no section
    shows or reads any more: other seeds' figures, figures of explainers left out of the
    matrix)."""
    used = set(used)
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file() and path not in used:
            path.unlink()
