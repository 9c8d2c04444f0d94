"""Dataset protocol: a spec plus train/test splits of images in [-1, 1]."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from ganbench.params import resolve_params


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset offers; evaluators read it to decide whether they apply."""

    name: str
    version: str
    image_size: int
    channels: int
    num_classes: int | None = None
    has_masks: bool = False
    factors: tuple[str, ...] = ()
    train_size: int = 0
    test_size: int = 0
    # levels of each factor, aligned with ``factors``: k > 0 categorical with k values, 0 continuous
    factor_levels: tuple[int, ...] = ()
    # concept names of the masks (ground truth) and of the segmenter (any image of the domain)
    concepts: tuple[str, ...] = ()
    has_segmenter: bool = False

    @property
    def has_domain_network(self) -> bool:
        """The suite trains a domain network for every dataset with labels or factors."""
        return bool(self.num_classes or self.factors)

    @property
    def features(self) -> frozenset[str]:
        """Words evaluators can require: ``labels``, ``masks``, ``factors``, ``segmenter``, ``domain``."""
        words = set()
        if self.num_classes:
            words.add("labels")
        if self.has_masks:
            words.add("masks")
        if self.factors:
            words.add("factors")
        if self.has_segmenter:
            words.add("segmenter")
        if self.has_domain_network:
            words.add("domain")
        return frozenset(words)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        from .segmenters import TorchScriptSegmenter

        return TorchScriptSegmenter(
            path, tuple(self.params.get("segmenter_concepts") or ()), where=f"dataset {self.name!r}"
        )
