"""Segmenters: any image of a dataset's domain (real or generated) to per-concept masks.

GAN Dissection compares unit activations with concept masks of *generated* images, so a
dataset needs more than the masks of its real images: it needs a function that draws
them for any image. Every segmenter maps images in [-1, 1], shape (N, C, H, W), to a
bool tensor (N, K, H, W) over its ``concepts``; a pixel may carry several concepts
(shapes: "circle" and "red"), or none.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ganbench.core.errors import ConfigError


class Segmenter:
    """Base class: ``concepts`` names the K output channels; ``segment`` runs in batches."""

    concepts: tuple[str, ...] = ()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def segment(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        return torch.cat(
            [self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        )


def moments(region: torch.Tensor) -> dict[str, torch.Tensor]:
    """Area and central moments of binary regions (B, H, W), in pixel units.

    Computed from raw moments by contractions with coordinate powers, so no (B, H, W)
    temporary is made per moment.
    """
    h, w = region.shape[-2:]
    r = region.float()
    y = torch.arange(h, dtype=r.dtype, device=r.device)
    x = torch.arange(w, dtype=r.dtype, device=r.device)
    yp = torch.stack([y**k for k in range(5)])  # (5, H)
    xp = torch.stack([x**k for k in range(5)])  # (5, W)
    raw = torch.einsum("bhw,ih,jw->bij", r, yp, xp)  # raw[b, i, j] = sum y^i x^j
    area = raw[:, 0, 0]
    a = area.clamp_min(1)
    e = raw / a[:, None, None]  # E[y^i x^j]
    mx, my = e[:, 0, 1], e[:, 1, 0]
    var_x = e[:, 0, 2] - mx**2
    var_y = e[:, 2, 0] - my**2
    skew_y = e[:, 3, 0] - 3 * my * e[:, 2, 0] + 2 * my**3
    # E[(x - mx)^2 (y - my)^2], expanded in raw moments
    ex2y2 = (
        e[:, 2, 2]
        - 2 * mx * e[:, 2, 1]
        + mx**2 * e[:, 2, 0]
        - 2 * my * e[:, 1, 2]
        + 4 * mx * my * e[:, 1, 1]
        - 2 * my * mx**2 * e[:, 1, 0]
        + my**2 * e[:, 0, 2]
        - 2 * my**2 * mx * e[:, 0, 1]
        + my**2 * mx**2
    )
    return {"area": area, "var_x": var_x, "var_y": var_y, "xxyy": ex2y2, "skew_y": skew_y}


class DigitsSegmenter(Segmenter):
    """Stroke and background of a digit by thresholding ink; with a classifier, per-class strokes.

    ``stroke_k`` marks the stroke pixels of images the digits domain classifier reads as
    k, so a unit can agree with "the stroke of a 7" rather than with ink in general.
    """

    def __init__(self, threshold: float = 0.0, classifier=None, num_classes: int = 10):
        self.threshold = threshold
        self.classifier = classifier
        self.num_classes = num_classes
        self.concepts = ("background", "stroke")
        if classifier is not None:
            self.concepts += tuple(f"stroke_{k}" for k in range(num_classes))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        stroke = images.mean(1, keepdim=True) > self.threshold
        parts = [~stroke, stroke]
        if self.classifier is not None:
            label = self.classifier.classify(images)
            parts.append(stroke & F.one_hot(label, self.num_classes).bool()[..., None, None])
        return torch.cat(parts, 1)


class TorchScriptSegmenter(Segmenter):
    """A user's TorchScript segmenter (``segmenter = "path.pt"`` in the dataset's config table).

    A ``.pt2`` file saved by ``torch.export.save`` is accepted as well (name its concepts
    in the config: an exported program keeps no attributes).

    The module takes images in [-1, 1], (N, C, H, W), and returns either integer labels
    (N, H, W) — concept k where the label is k — or scores (N, K, H, W), thresholded at
    0.5 (return probabilities or bools). Outputs of another size are resized (nearest) to
    the images'. Concept names come from ``segmenter_concepts`` in the config, or else from
    a ``concepts`` list attribute of the module.
    """

    def __init__(self, path: str | Path, concepts: tuple[str, ...] = (), where: str = "segmenter"):
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{where}: segmenter file {path} does not exist (give a TorchScript .pt path)"
            )
        try:
            if path.suffix == ".pt2":  # torch.export's successor format
                self.module = torch.export.load(str(path)).module()
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation note
                    self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{where}: {path} is not a TorchScript module (torch.jit.save) or an exported "
                f"program (.pt2, torch.export.save): {first}"
            ) from None
        if not concepts:
            concepts = tuple(getattr(self.module, "concepts", ()) or ())
        if not concepts:
            raise ConfigError(
                f"{where}: name the concepts of {path.name} with segmenter_concepts = [...] "
                "or a `concepts` attribute on the module"
            )
        self.concepts = tuple(concepts)
        self.where = where

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        module = self.module.to(images.device)
        out = module(images)
        k = len(self.concepts)
        if out.dim() == 3 and not out.is_floating_point():
            out = out.long()
            out = torch.where((out >= 0) & (out < k), out, k)  # other labels: no concept
            masks = F.one_hot(out, k + 1)[..., :k].permute(0, 3, 1, 2).bool()
        elif out.dim() == 4 and out.shape[1] == k:
            masks = out > 0.5 if out.dtype != torch.bool else out
        else:
            raise ConfigError(
                f"{self.where}: segmenter returned shape {tuple(out.shape)} ({out.dtype}); expected "
                f"integer labels (N, H, W) or scores (N, {k}, H, W) for its {k} concepts"
            )
        if masks.shape[-2:] != images.shape[-2:]:
            masks = F.interpolate(masks.float(), size=images.shape[-2:], mode="nearest") > 0.5
        return masks
