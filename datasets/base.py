"""Dataset protocol: a spec plus train/test splits of images in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from ganbench.core.params import resolve_params
from ganbench.core.specs import DatasetSpec

from . import domain
from .segmenters import TorchScriptSegmenter

__all__ = ["DatasetSpec", "ImageDatasetBase", "TensorImages"]


@dataclass
class TensorImages(Dataset):
    """Images held in memory as one tensor (N, C, H, W) in [-1, 1], with optional labels."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        if self.labels is None:
            return self.images[i]
        return self.images[i], self.labels[i]


class ImageDatasetBase:
    """Base class of every dataset family; subclasses set ``name``, ``version``, ``defaults``.

    ``split("train")`` and ``split("test")`` return torch Datasets of images in [-1, 1].
    The split is fixed by the ``split_seed`` parameter, not by the trial seed, so every
    trial on a dataset is scored against the same held-out images. Datasets with ground
    truth keep it in ``TensorImages.extras``: ``masks`` (N, K, H, W) bool over
    ``spec.concepts`` and ``factors`` (N, F) float over ``spec.factors``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    defaults: ClassVar[dict[str, Any]] = {}
    # readable names of the levels of categorical factors (shapes: shape, colour, background)
    level_names: ClassVar[dict[str, tuple[str, ...]]] = {}
    # how the suite trains this dataset's domain network (see ganbench.datasets.domain)
    domain_training: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = resolve_params(self.defaults, params, f"dataset {self.name!r}")

    @property
    def spec(self) -> DatasetSpec:
        raise NotImplementedError

    def split(self, which: str) -> TensorImages:
        raise NotImplementedError

    def segmenter(self, domain_network: Any = None):
        """A :class:`~ganbench.datasets.segmenters.Segmenter` for any image of this domain, or None.

        The default is a user's TorchScript segmenter named by the ``segmenter`` parameter,
        when the dataset declares one; built-in datasets override this with their own.
        """
        path = self.params.get("segmenter")
        if not path:
            return None
        return TorchScriptSegmenter(
            path, tuple(self.params.get("segmenter_concepts") or ()), where=f"dataset {self.name!r}"
        )

    def load_domain_network(
        self, path: Path, device: torch.device | str = "cpu", sha256: str | None = None
    ) -> domain.DomainNetwork:
        """This dataset's domain network saved at ``path`` (a pinned one, or one a ``domain``
        trial trained), on ``device`` in eval mode; with ``sha256``, its weights must have
        that hash (:func:`ganbench.datasets.domain.load_domain_network`)."""
        return domain.load_domain_network(path, device, sha256)
