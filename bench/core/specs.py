"""What a dataset offers, in the words architectures and evaluators read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
