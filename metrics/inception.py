"""Inception-v3 FID and KID, computed by torch-fidelity, only from a local weights file.

``fidelity`` scores in the domain network's features, which the suite trains itself; this
metric is the conventional Inception-based FID for readers who have the weights. Nothing
is ever downloaded: the weights are torch-fidelity's ``inception-v3-compat`` state dict
(the file it would otherwise fetch, ``weights-inception-2015-12-05-6726825d.pth``: the
TensorFlow 2015-12-05 graph converted to PyTorch), given as

the parameter ``weights`` (``[metric.fid_inception] weights = "/path/to/file.pth"``), which
is part of the trial's key: a trial stored as ``n/a`` for want of weights is a different
trial from one with them, so giving the path later runs it. (An environment variable would
not be in the key, and the stored ``n/a`` would never rerun.)

Without it, every trial is ``n/a`` with the reason saying what to set; a path that does
not exist or a file that is not such a state dict is a one-line error naming the file.
The file is first read with ``torch.load(weights_only=True)`` (tensors only, so a
malicious pickle cannot run code) and only then handed to torch-fidelity, which loads it
again itself; as torch-fidelity downloads only when its ``feature_extractor_weights_path``
is None, it never is here.

Up to ``n`` real test images and as many generated ones (the real-data reference: as
many training images), quantised to uint8 as a saved PNG would be, grey images repeated
to three channels; torch-fidelity resizes them to 299x299 (TensorFlow-1 bilinear, as the
original FID code) and takes the 2048-d pool features (``feature_layer``). The weights
file's path and sha256 are recorded in ``fid_inception.json``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ganbench.core.errors import ConfigError, NotApplicable
from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_metric
from ganbench.core.scores import DISTANCES, Score, count_score

from ._stats import paired_samples
from .fidelity import calculate_metrics, kid_subset

EXTRACTOR = "inception-v3-compat"
PUBLISHED_FILE = "weights-inception-2015-12-05-6726825d.pth"
FEATURE_LAYERS = ("64", "192", "768", "2048")
NO_WEIGHTS = (
    "fid_inception needs Inception-v3 weights: set [metric.fid_inception] weights = "
    f'"/path/{PUBLISHED_FILE}"; nothing is downloaded'
)


def inception_weights(weights: str = "") -> Path:
    """The weights file to use (``weights``), checked
    to exist and to hold a state dict of tensors (read with ``weights_only=True``).

    Neither given: :class:`NotApplicable`; missing or unreadable: :class:`ConfigError`.
    """
    given = weights
    if not given.strip():
        raise NotApplicable(NO_WEIGHTS)
    source = "[metric.fid_inception] weights"
    path = Path(given).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"fid_inception: the Inception-v3 weights file {path} (from {source}) does not exist"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, random bytes, not a torch file, a disallowed pickle
        raise ConfigError(
            f"fid_inception: cannot read the Inception-v3 weights file {path} (from {source}): "
            f"not a PyTorch file of tensors ({_load_error(exc)})"
        ) from None
    if not (
        isinstance(state, Mapping)
        and state
        and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise ConfigError(
            f"fid_inception: {path} (from {source}) is not a state dict of tensors; it must be "
            f"torch-fidelity's {EXTRACTOR} weights ({PUBLISHED_FILE})"
        )
    return path


def _load_error(exc: Exception) -> str:
    """One short line of why torch.load refused a file (its messages run to paragraphs)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # e.g. "Unsupported global: GLOBAL os.system ..."
        rest = text.split("WeightsUnpickler error:", 1)[1].strip()
        if rest:
            return rest.splitlines()[0].split(". ")[0][:160]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = re.sub(r"\x1b\[[0-9;]*m", "", lines[0])[:160] if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@functools.cache
def _cached_sha256(path: str, mtime: float) -> str:
    return file_sha256(Path(path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rgb(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 3:
        return images
    if images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    raise NotApplicable(f"fid_inception needs grey or RGB images, got {images.shape[1]} channels")


def inception_metrics(
    generated,
    real: torch.Tensor,
    weights: Path,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    feature_layer: str = "2048",
    batch_size: int = 64,
    seed: int = 0,
    cuda: bool = False,
) -> dict[str, float]:
    """torch-fidelity's FID and KID in Inception-v3 features, the network read from ``weights``.

    ``generated``: images in [-1, 1], or an architecture that torch-fidelity samples from."""
    try:
        out = calculate_metrics(
            generated,
            real,
            transform=_rgb,
            kid_subset_size=kid_subset_size,
            kid_subsets=kid_subsets,
            batch_size=batch_size,
            seed=seed,
            cuda=cuda,
            fid=True,
            kid=True,
            feature_extractor=EXTRACTOR,
            feature_extractor_weights_path=str(weights),  # never None: None downloads
            feature_layer_fid=feature_layer,
            feature_layer_kid=feature_layer,
            datasets_download=False,
        )
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        if lines and "state_dict" in lines[0]:  # the keys or shapes do not fit the network
            detail = lines[1].strip()[:160] if len(lines) > 1 else lines[0]
            raise ConfigError(
                f"fid_inception: {weights} is not torch-fidelity's {EXTRACTOR} state dict "
                f"({detail})"
            ) from None
        raise
    return {
        "fid_inception": out["frechet_inception_distance"],
        "kid_inception": out["kernel_inception_distance_mean"],
    }


@register_metric("fid_inception")
class InceptionFID(Evaluator):
    """FID and KID in Inception-v3 features (torch-fidelity), from a local weights file only."""

    group = DISTANCES

    version = "1"
    defaults = {
        "weights": "",  # path of torch-fidelity's Inception-v3 state dict; "": n/a
        "n": 1000,
        "kid_subset_size": 1000,
        "kid_subsets": 100,
        "feature_layer": "2048",  # pool3, as published FIDs; 64, 192, 768: earlier layers
        "batch_size": 64,
    }
    ranges = {
        "feature_layer": Range(choices=FEATURE_LAYERS),
        "n": Range(low=2),
        "kid_subset_size": Range(low=2),
        "kid_subsets": Range(low=1),
        "batch_size": Range(low=1),
    }
    scores = (
        Score(
            "fid_inception",
            "lower",
            "Fréchet distance between Gaussians fitted to Inception-v3 pool features (2048-d) "
            "of real test and generated images (torch-fidelity, local weights file); the 32x32 "
            "images (grey repeated to RGB) are upsampled by torch-fidelity to 299x299. "
            "Comparable with published FIDs only for the same sample counts and preprocessing",
            ideal=0.0,
        ),
        Score(
            "kid_inception",
            "lower",
            "kernel Inception distance: unbiased MMD² (cubic polynomial kernel) between the same "
            "Inception-v3 features, mean over random subsets (torch-fidelity)",
            ideal=0.0,
        ),
        count_score("fid_inception_n"),
    )

    @classmethod
    def key_params(cls, params: dict) -> dict:
        """The weights by their sha256 (``weights_sha256``), not by their path on this machine:
        the same file anywhere gives the same keys, another file at the same path others."""
        path = Path(params.get("weights", "")).expanduser()
        if not params.get("weights", "").strip() or not path.is_file():
            return params  # n/a without weights; a missing file fails the trial, named
        out = {k: v for k, v in params.items() if k != "weights"}
        return out | {"weights_sha256": _cached_sha256(str(path.resolve()), path.stat().st_mtime)}

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        weights = inception_weights(p["weights"])
        if ctx.model is None:  # the real-data reference: two disjoint real splits
            reals, fakes = paired_samples(ctx, p["n"])
        else:
            reals, fakes = ctx.reals(p["n"], "test"), ctx.model
        scores = inception_metrics(
            fakes,
            reals,
            weights,
            kid_subset_size=p["kid_subset_size"],
            kid_subsets=p["kid_subsets"],
            feature_layer=p["feature_layer"],
            batch_size=p["batch_size"],
            seed=ctx.seed,
            cuda=ctx.device.type == "cuda",
        )
        report = {
            "weights": str(weights),
            "weights_sha256": file_sha256(weights),
            "feature_layer": p["feature_layer"],
            "n": len(reals),
            "kid_subset_size": kid_subset(p["kid_subset_size"], len(reals)),
            **scores,
        }
        return Evaluation(
            {**scores, "fid_inception_n": float(len(reals))}, reports={"fid_inception": report}
        )
