"""Real image datasets read from a local root in their distributed formats; nothing is downloaded.

Every loader reads the files exactly as their publishers ship them (IDX, pickled CIFAR
batches, JPEG folders, LSUN's LMDB export), decodes with numpy/PIL only, and reports a
root that is unset, absent, incomplete or corrupt as one :class:`DatasetRootError` line
that says where the files should go. Nothing is read in ``__init__``: ``ganbench list``
builds every dataset with its defaults and shows the ``layout`` when the root is unset.

This module holds what the loaders share, :class:`LocalImageDataset` (root checks, errors,
splits, resizing and decoding); the loaders of pixel arrays (MNIST and Fashion-MNIST's IDX
files, CIFAR-10's pickled batches) are :mod:`ganbench.datasets.local_arrays`, those of encoded
images (CelebA, LSUN's LMDB export or a folder, any image folder)
:mod:`ganbench.datasets.local_images`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganbench.core.errors import ConfigError

from .base import DatasetSpec, ImageDatasetBase, TensorImages

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights of PIL's convert("L")
_CHUNK = 256  # images decoded per batch: bounds the memory of in-flight work


class DatasetRootError(ConfigError):
    """A dataset's local root is unset, absent, lacks the expected files, or holds a bad one."""


class LocalImageDataset(ImageDatasetBase):
    """Shared machinery of the local loaders: root checks, errors, resizing, channels, subsets."""

    layout: ClassVar[str] = ""
    native_channels: ClassVar[int] = 3
    # real datasets are larger than the built-in ones: fewer passes suffice
    domain_training = {"epochs": 5, "shift": 2}
    defaults = {
        "root": "",
        "image_size": 32,
        "channels": 0,
        "max_images": 0,
        "split_seed": 0,
        "segmenter": "",
        "segmenter_concepts": [],
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        # resolve_params copies the dict shallowly: keep the class default list unshared.
        self.params["segmenter_concepts"] = list(self.params["segmenter_concepts"])
        where = f"dataset {self.name!r}"
        p = self.params
        if p["image_size"] < 1:
            raise ConfigError(f"{where}: key 'image_size' must be >= 1, got {p['image_size']}")
        if p["channels"] not in (0, 1, 3):
            raise ConfigError(
                f"{where}: key 'channels' must be 0 (native), 1 or 3, got {p['channels']}"
            )
        if p["max_images"] < 0:
            raise ConfigError(f"{where}: key 'max_images' must be >= 0, got {p['max_images']}")
        if not 0.0 <= p.get("test_fraction", 0.0) < 1.0:
            raise ConfigError(
                f"{where}: key 'test_fraction' must be in [0, 1), got {p['test_fraction']}"
            )

    @property
    def image_size(self) -> int:
        return self.params["image_size"]

    @property
    def channels(self) -> int:
        return self.params["channels"] or self.native_channels

    # -- errors ----------------------------------------------------------------------------

    def _error(self, problem: str) -> DatasetRootError:
        """One line: the dataset, what is wrong (with its path), and where the files go."""
        text = (
            f"dataset {self.name!r}: {problem}; expected in {self._root_path()}: {self.layout} "
            f'(set root = "..." in [dataset.{self.name}])'
        )
        return DatasetRootError(_one_line(text))

    def _root_path(self) -> Path:
        return Path(os.path.expanduser(self.params["root"])).absolute()

    @cached_property
    def root(self) -> Path:
        """The configured root, checked to be an existing directory (or file, for LMDB)."""
        if not self.params["root"].strip():
            raise DatasetRootError(
                _one_line(
                    f'dataset {self.name!r}: no root set: set root = "/path/to/folder" in '
                    f"[dataset.{self.name}], a folder holding {self.layout}"
                )
            )
        path = self._root_path()
        if not path.exists():
            raise self._error(f"root {path} does not exist")
        return path

    # -- splits ----------------------------------------------------------------------------

    def split(self, which: str) -> TensorImages:
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {which!r}")
        return self._splits[which]

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        raise NotImplementedError

    def _summary(self) -> tuple[int, int, int | None]:
        """(train size, test size, classes); file loaders answer without decoding images."""
        train, test = self._splits["train"], self._splits["test"]
        classes = getattr(self, "num_classes", None)
        return len(train), len(test), classes

    @property
    def spec(self) -> DatasetSpec:
        train_size, test_size, classes = self._summary()
        return DatasetSpec(
            name=self.name,
            version=self.version,
            image_size=self.image_size,
            channels=self.channels,
            num_classes=classes,
            train_size=train_size,
            test_size=test_size,
            has_segmenter=bool(self.params["segmenter"]),
            concepts=tuple(self.params["segmenter_concepts"]),
        )

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.params["split_seed"])

    def _cap_official(self, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices kept from an official split: all, or ``max_images`` shared in its proportion."""
        cap, total = self.params["max_images"], n_train + n_test
        if not cap or cap >= total:
            return np.arange(n_train), np.arange(n_test)
        k_test = min(n_test, round(cap * n_test / total))
        k_train = min(n_train, cap - k_test)
        rng = self._rng()
        return rng.permutation(n_train)[:k_train], rng.permutation(n_test)[:k_test]

    def _random_split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of (train, test) for data without an official split, after the ``max_images`` cap."""
        order = self._rng().permutation(n)
        if self.params["max_images"]:
            order = order[: self.params["max_images"]]
        fraction = self.params["test_fraction"]
        n_test = round(len(order) * fraction)
        if fraction > 0 and len(order) >= 2:  # evaluators need at least one held-out image
            n_test = min(len(order) - 1, max(1, n_test))
        return order[n_test:], order[:n_test]

    # -- pixels ----------------------------------------------------------------------------

    def _tensor_from_uint8(self, pixels: np.ndarray) -> torch.Tensor:
        """(N, C, H, W) uint8 at any size -> (N, channels, S, S) float32 in [-1, 1], in chunks."""
        n, c, h, w = pixels.shape
        size, out_c = self.image_size, self.channels
        out = torch.empty((n, out_c, size, size), dtype=torch.float32)
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        for start in range(0, n, 4096):
            x = torch.from_numpy(
                pixels[start : start + 4096, :, top : top + side, left : left + side]
            )
            x = x.float().div_(255.0)
            if c == 3 and out_c == 1:  # linear, so converting before resizing is exact and cheaper
                x = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA)).unsqueeze(1)
            if side != size:
                x = F.interpolate(
                    x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
                )
            # grey -> RGB by broadcasting in the copy: scale the single plane first
            out[start : start + len(x)] = x.mul_(2.0).sub_(1.0).clamp_(-1.0, 1.0)
        return out

    def _decode(self, source: BinaryIO | Path, name: str) -> np.ndarray:
        """One encoded image -> (S, S) or (S, S, 3) uint8: short side resized, centre square."""
        size = self.image_size
        mode = "L" if self.channels == 1 else "RGB"
        try:
            with Image.open(source) as im:
                im.draft(mode, (2 * size, 2 * size))  # JPEG decodes at a reduced scale: faster
                im = im.convert(mode)
                w, h = im.size
                side = min(w, h)
                box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
                # PIL filters widen their support when shrinking, so this is antialiased.
                im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
                return np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise self._error(f"cannot decode {name} as an image ({exc})") from exc

    def _decode_all(
        self, items: Sequence[Any], fetch: Callable[[Any], tuple[BinaryIO | Path, str]]
    ) -> torch.Tensor:
        """Decode ``items`` in order, on threads (PIL releases the GIL while decoding)."""
        from tqdm.auto import tqdm

        size, c = self.image_size, self.channels
        out = np.empty((len(items), c, size, size), dtype=np.uint8)
        workers = max(1, min(8, os.cpu_count() or 1))
        bar = tqdm(
            total=len(items),
            desc=f"loading {self.name}",
            unit="img",
            leave=False,
            disable=True if len(items) < 2000 else None,  # None: only on a terminal
        )
        with ThreadPoolExecutor(workers) as pool, bar:
            for start in range(0, len(items), _CHUNK):
                sources, names = zip(
                    *(fetch(it) for it in items[start : start + _CHUNK]), strict=True
                )
                for j, arr in enumerate(pool.map(self._decode, sources, names)):
                    out[start + j] = arr[None] if c == 1 else arr.transpose(2, 0, 1)
                bar.update(len(sources))
        return torch.from_numpy(out).float().div_(127.5).sub_(1.0).clamp_(-1.0, 1.0)


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def labels_tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    """Integer labels as the int64 tensor a split holds (None stays None)."""
    return None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
