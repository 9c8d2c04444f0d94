"""scikit-learn's handwritten digits (1,797 real 8x8 images), resized for GANs."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.core.registry import register_dataset

from .base import DatasetSpec, ImageDatasetBase, TensorImages
from .segmenters import DigitsSegmenter


@register_dataset("digits")
class Digits(ImageDatasetBase):
    """``load_digits``: 8x8 grey digits (values 0..16), bilinearly resized, scaled to [-1, 1], labelled 0-9."""

    version = "1"
    defaults = {"image_size": 32, "test_fraction": 0.2, "split_seed": 0}
    # shifts of up to 2 pixels: generated digits are not centred as exactly as the real ones
    domain_training = {"epochs": 15, "shift": 2}

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(
            1
        )  # (N,1,8,8) in [0,1]
        size = self.params["image_size"]
        if size != 8:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 2 - 1).contiguous()
        y = torch.from_numpy(bunch.target.astype(np.int64))
        rng = np.random.default_rng(self.params["split_seed"])
        order = torch.from_numpy(rng.permutation(len(x)))
        n_test = int(round(len(x) * self.params["test_fraction"]))
        test, train = order[:n_test], order[n_test:]
        masks = self.segmenter()(x)  # background / stroke: the same rule for real and generated
        return {
            "train": TensorImages(x[train], y[train], {"masks": masks[train]}),
            "test": TensorImages(x[test], y[test], {"masks": masks[test]}),
        }

    def split(self, which: str) -> TensorImages:
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {which!r}")
        return self._splits[which]

    @property
    def spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.name,
            version=self.version,
            image_size=self.params["image_size"],
            channels=1,
            num_classes=10,
            train_size=len(self._splits["train"]),
            test_size=len(self._splits["test"]),
            has_masks=True,
            concepts=("background", "stroke"),
            has_segmenter=True,
        )

    def segmenter(self, domain_network=None):
        """Ink above mid-grey is stroke; given the domain classifier, also ``stroke_0``..``stroke_9``."""
        return DigitsSegmenter(threshold=0.0, classifier=domain_network)
