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

    @property
    def features(self) -> frozenset[str]:
        """Words evaluators can require: ``labels``, ``masks``, ``factors``."""
        words = set()
        if self.num_classes:
            words.add("labels")
        if self.has_masks:
            words.add("masks")
        if self.factors:
            words.add("factors")
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
    trial on a dataset is scored against the same held-out images.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = resolve_params(self.defaults, params, f"dataset {self.name!r}")

    @property
    def spec(self) -> DatasetSpec:
        raise NotImplementedError

    def split(self, which: str) -> TensorImages:
        raise NotImplementedError
