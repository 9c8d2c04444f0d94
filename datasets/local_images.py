"""Local datasets stored as encoded images, decoded with PIL on threads: CelebA (its aligned
JPEGs, with the official split when its partition file is there), LSUN bedrooms (the LMDB
export or a folder) and any folder of images. Items and splits are chosen before any image
is decoded. The shared machinery is :class:`ganbench.datasets.local.LocalImageDataset`."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ganbench.core.registry import register_dataset

from .base import TensorImages
from .local import DatasetRootError, LocalImageDataset, labels_tensor

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


@dataclass
class _Selection:
    """Which items (paths, LMDB keys) each split holds, decided before any image is decoded."""

    items: dict[str, list[Any]]
    labels: dict[str, np.ndarray | None]
    num_classes: int | None


# -- image files: CelebA, LSUN, any folder -----------------------------------------------------


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    """Image files under ``folder`` in a stable order, skipping hidden files (e.g. macOS ``._x``)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [
        p
        for p in found
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


class _FileDataset(LocalImageDataset):
    """Loaders of encoded images: pick items and splits cheaply, decode only the kept ones."""

    defaults = {**LocalImageDataset.defaults, "test_fraction": 0.1}

    @cached_property
    def _selection(self) -> _Selection:
        raise NotImplementedError

    def _fetch(self, item: Any) -> tuple[BinaryIO | Path, str]:
        """An item -> something PIL opens, and its name for messages."""
        return item, str(item)

    def _select(
        self, items: list[Any], labels: np.ndarray | None, num_classes: int | None
    ) -> _Selection:
        """Random train/test split of ``items`` (no official split), capped at ``max_images``."""
        train, test = self._random_split(len(items))
        return _Selection(
            items={"train": [items[i] for i in train], "test": [items[i] for i in test]},
            labels={
                "train": None if labels is None else labels[train],
                "test": None if labels is None else labels[test],
            },
            num_classes=num_classes,
        )

    def _summary(self) -> tuple[int, int, int | None]:
        sel = self._selection
        return len(sel.items["train"]), len(sel.items["test"]), sel.num_classes

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        return self._decode_selection(self._selection, self._fetch)

    def _decode_selection(
        self, sel: _Selection, fetch: Callable[[Any], tuple[BinaryIO | Path, str]]
    ) -> dict[str, TensorImages]:
        return {
            split: TensorImages(self._decode_all(items, fetch), labels_tensor(sel.labels[split]))
            for split, items in sel.items.items()
        }

    def _folder_images(self, what: str) -> list[Path]:
        if not self.root.is_dir():
            raise self._error(f"root {self.root} is not a folder")
        files = _image_files(self.root, recursive=True)
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise self._error(f"no {what} ({suffixes}) under {self.root}")
        return files


_CELEBA_IMAGE_DIRS = (
    "img_align_celeba",
    "img_align_celeba/img_align_celeba",  # Kaggle's archive nests the folder
    "Img/img_align_celeba",  # the official Google Drive tree
    ".",
)
_CELEBA_PARTITIONS = (
    "list_eval_partition.txt",
    "Eval/list_eval_partition.txt",
    "list_eval_partition.csv",  # Kaggle: image_id,partition
)


@register_dataset("celeba")
class CelebA(_FileDataset):
    """CelebA aligned faces (202,599 JPEGs of 178x218), official split when its partition file is there."""

    version = "1"
    layout = (
        "img_align_celeba/*.jpg from img_align_celeba.zip, plus list_eval_partition.txt for "
        "the official split"
    )

    def _bases(self) -> list[Path]:
        return [self.root, self.root / "celeba"]  # the second is torchvision's layout

    def _images(self) -> list[Path]:
        for base in self._bases():
            for sub in _CELEBA_IMAGE_DIRS:
                folder = base / sub
                if folder.is_dir():
                    files = _image_files(folder, recursive=False)
                    if files:
                        return files
        hint = ""
        if any((b / "img_align_celeba.zip").is_file() for b in self._bases()):
            hint = " (found img_align_celeba.zip: extract it)"
        raise self._error(f"no CelebA images under {self.root}{hint}")

    def _partition(self) -> tuple[Path, dict[str, int]] | None:
        """The official split: file name -> 0 train, 1 valid, 2 test; None when absent."""
        for base in self._bases():
            for name in _CELEBA_PARTITIONS:
                path = base / name
                if path.is_file():
                    return path, self._read_partition(path)
        return None

    def _read_partition(self, path: Path) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise self._error(f"cannot read {path} ({exc})") from exc
        for number, line in enumerate(lines, 1):
            parts = line.replace(",", " ").split()
            if not parts or (number == 1 and parts[-1] == "partition"):
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise self._error(
                    f"line {number} of {path} is {line.strip()[:60]!r}, not 'FILE.jpg 0|1|2'"
                )
            out[parts[0]] = int(parts[1])
        return out

    @cached_property
    def _selection(self) -> _Selection:
        files = self._images()
        found = self._partition()
        if found is None:
            return self._select(files, None, None)
        path, partition = found
        unlisted = [f.name for f in files if f.name not in partition]
        if unlisted:
            raise self._error(
                f"{len(unlisted)} images (e.g. {unlisted[0]}) are not in {path}: "
                "a partition file from another release?"
            )
        split = {
            "train": [f for f in files if partition[f.name] in (0, 1)],
            "test": [f for f in files if partition[f.name] == 2],
        }
        keep = self._cap_official(len(split["train"]), len(split["test"]))
        return _Selection(
            items={s: [split[s][i] for i in idx] for s, idx in zip(split, keep, strict=True)},
            labels={"train": None, "test": None},
            num_classes=None,
        )


@register_dataset("lsun_bedroom")
class LsunBedroom(_FileDataset):
    """LSUN bedrooms (about 3M photos), from the LMDB export or a folder of images."""

    version = "1"
    layout = (
        "the LSUN LMDB export (bedroom_train_lmdb/ holding data.mdb; needs pip install lmdb) "
        "or jpg/png/webp images in any folder tree"
    )

    def _lmdb_dir(self) -> Path | None:
        if self.root.is_file() and self.root.name == "data.mdb":
            return self.root.parent
        if (self.root / "data.mdb").is_file():
            return self.root
        return None

    def _open_lmdb(self, folder: Path) -> Any:
        try:
            import lmdb
        except ImportError:
            raise DatasetRootError(
                f"dataset {self.name!r}: {folder} is an LMDB export (data.mdb), which needs the "
                "lmdb package: pip install lmdb"
            ) from None
        try:
            return lmdb.open(str(folder), readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as exc:
            raise self._error(f"cannot open the LMDB in {folder} ({exc})") from exc

    @cached_property
    def _selection(self) -> _Selection:
        folder = self._lmdb_dir()
        if folder is None:
            return self._select(self._folder_images("images"), None, None)
        env = self._open_lmdb(folder)
        try:
            with env.begin() as txn:
                keys = list(txn.cursor().iternext(keys=True, values=False))
        finally:
            env.close()
        if not keys:
            raise self._error(f"the LMDB in {folder} holds no records")
        return self._select(keys, None, None)

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        folder = self._lmdb_dir()
        if folder is None:
            return self._decode_selection(self._selection, self._fetch)
        sel = self._selection  # list the keys before opening the LMDB again: never twice at once
        env = self._open_lmdb(folder)
        try:
            with env.begin() as txn:

                def fetch(key: bytes) -> tuple[BinaryIO, str]:
                    value = txn.get(key)
                    if value is None:
                        raise self._error(f"key {key!r} vanished from the LMDB in {folder}")
                    return io.BytesIO(value), f"LMDB record {key!r} in {folder}"

                return self._decode_selection(sel, fetch)
        finally:
            env.close()


@register_dataset("imagefolder")
class ImageFolder(_FileDataset):
    """Any folder of images (e.g. movie posters); one class per subfolder when they sit in two or more."""

    version = "1"
    layout = (
        "png/jpg/jpeg/bmp/webp images in any folder tree (one class per subfolder when every "
        "image sits in a subfolder)"
    )

    @cached_property
    def _selection(self) -> _Selection:
        files = self._folder_images("images")
        parts = [f.relative_to(self.root).parts for f in files]
        classes = sorted({p[0] for p in parts if len(p) > 1})
        # One folder of images is not a labelling: labels would promise class structure.
        if len(classes) < 2 or any(len(p) == 1 for p in parts):
            return self._select(files, None, None)
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[p[0]] for p in parts], dtype=np.int64)
        return self._select(files, labels, len(classes))
