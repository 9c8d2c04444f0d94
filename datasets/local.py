"""Real image datasets read from a local root in their distributed formats; nothing is downloaded.

Every loader reads the files exactly as their publishers ship them (IDX, pickled CIFAR
batches, JPEG folders, LSUN's LMDB export), decodes with numpy/PIL only, and reports a
root that is unset, absent, incomplete or corrupt as one :class:`DatasetRootError` line
that says where the files should go. Nothing is read in ``__init__``: ``ganbench list``
builds every dataset with its defaults and shows the ``layout`` when the root is unset.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganbench.core.errors import ConfigError
from ganbench.core.registry import register_dataset

from .base import DatasetSpec, ImageDatasetBase, TensorImages

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights of PIL's convert("L")
_CHUNK = 256  # images decoded per batch: bounds the memory of in-flight work


class DatasetRootError(ConfigError):
    """A dataset's local root is unset, absent, lacks the expected files, or holds a bad one."""


@dataclass
class _Selection:
    """Which items (paths, LMDB keys) each split holds, decided before any image is decoded."""

    items: dict[str, list[Any]]
    labels: dict[str, np.ndarray | None]
    num_classes: int | None


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


def _labels_tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    return None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))


# -- MNIST and Fashion-MNIST: IDX files -----------------------------------------------------

_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class _IdxDataset(LocalImageDataset):
    """MNIST-shaped data: four IDX files (gzipped or not), 28x28 grey, ten classes."""

    native_channels = 1
    num_classes = 10
    raw_subdir: ClassVar[str] = ""  # torchvision's layout: root/<raw_subdir>
    title: ClassVar[str] = ""

    def _find(self, base: str) -> Path | None:
        for folder in (self.root, self.root / self.raw_subdir):
            for name in (base, base + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    def _read_idx(self, path: Path, magic: int, ndim: int) -> np.ndarray:
        """Parse one IDX file, checking its magic and that the body matches the header."""
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._error(f"{path} is a truncated or corrupt gzip file ({exc})") from exc
        header = 4 + 4 * ndim
        if len(raw) < header:
            raise self._error(f"{path} is truncated: {len(raw)} bytes, shorter than an IDX header")
        found = int.from_bytes(raw[:4], "big")
        if found != magic:
            kind = "images" if magic == _IDX_IMAGES else "labels"
            raise self._error(
                f"{path} has IDX magic 0x{found:08x}, not 0x{magic:08x} ({kind}): "
                "not an IDX file, or the wrong one"
            )
        dims = struct.unpack(f">{ndim}I", raw[4:header])
        expected = int(np.prod(dims))
        if len(raw) - header != expected:
            raise self._error(
                f"{path} holds {len(raw) - header} bytes of data but its header {dims} promises "
                f"{expected}: truncated or corrupt"
            )
        return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        paths = {split: [self._find(b) for b in bases] for split, bases in _IDX_FILES.items()}
        missing = [
            f"{b}[.gz]"
            for split, bases in _IDX_FILES.items()
            for b, p in zip(bases, paths[split], strict=True)
            if p is None
        ]
        if len(missing) == 4:
            raise self._error(f"no {self.title} files under {self.root}")
        if missing:
            raise self._error(f"missing {', '.join(missing)} under {self.root}")
        raw = {}
        for split, (image_path, label_path) in paths.items():
            images = self._read_idx(image_path, _IDX_IMAGES, 3)
            labels = self._read_idx(label_path, _IDX_LABELS, 1)
            if len(images) != len(labels):
                raise self._error(
                    f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels"
                )
            if labels.size and labels.max() >= self.num_classes:
                raise self._error(f"{label_path} has label {labels.max()}, not 0-9")
            raw[split] = (images, labels)
        keep = self._cap_official(len(raw["train"][0]), len(raw["test"][0]))
        out = {}
        for (split, (images, labels)), idx in zip(raw.items(), keep, strict=True):
            x = self._tensor_from_uint8(images[idx][:, None])
            out[split] = TensorImages(x, _labels_tensor(labels[idx]))
        return out


@register_dataset("mnist")
class Mnist(_IdxDataset):
    """MNIST handwritten digits (60k train, 10k test, 28x28 grey, 10 classes) read from IDX files."""

    version = "1"
    title = "MNIST"
    raw_subdir = "MNIST/raw"
    layout = (
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],"
        " t10k-labels-idx1-ubyte[.gz] (the files from the MNIST site)"
    )


@register_dataset("fashion_mnist")
class FashionMnist(_IdxDataset):
    """Fashion-MNIST clothing (60k train, 10k test, 28x28 grey, 10 classes) read from IDX files."""

    version = "1"
    title = "Fashion-MNIST"
    raw_subdir = "FashionMNIST/raw"
    layout = (
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],"
        " t10k-labels-idx1-ubyte[.gz] (the files from github.com/zalandoresearch/fashion-mnist)"
    )


# -- CIFAR-10: pickled batches ---------------------------------------------------------------

_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array rebuilder, whatever module holds it


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the numpy names a CIFAR batch needs, so a crafted pickle cannot run code."""

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR batch holds only numpy arrays"
            ) from None


_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


@register_dataset("cifar10")
class Cifar10(LocalImageDataset):
    """CIFAR-10 (50k train, 10k test, 32x32 colour, 10 classes) read from the python batches."""

    version = "1"
    num_classes = 10
    layout = (
        "data_batch_1 ... data_batch_5 and test_batch from cifar-10-python.tar.gz, directly or "
        "in cifar-10-batches-py/"
    )

    def _folder(self) -> Path:
        names = (*_CIFAR_TRAIN, "test_batch")
        for folder in (self.root, self.root / "cifar-10-batches-py"):
            if any((folder / n).is_file() for n in names):
                missing = [n for n in names if not (folder / n).is_file()]
                if missing:
                    raise self._error(f"missing {', '.join(missing)} under {folder}")
                return folder
        hint = ""
        if (self.root / "cifar-10-python.tar.gz").is_file():
            hint = " (found cifar-10-python.tar.gz: extract it with tar xzf)"
        raise self._error(f"no CIFAR-10 batches under {self.root}{hint}")

    def _batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """One batch -> (N, 3, 32, 32) uint8 images and N labels, its structure checked."""
        try:
            with path.open("rb") as f:
                obj = _CifarUnpickler(f, encoding="bytes").load()
        except Exception as exc:  # any failure of a foreign pickle is a bad file, said once
            raise self._error(f"{path} is not a readable CIFAR-10 batch ({exc})") from exc
        if not isinstance(obj, dict):
            raise self._error(f"{path} holds a {type(obj).__name__}, not a CIFAR-10 batch dict")
        data = obj.get(b"data", obj.get("data"))
        labels = obj.get(b"labels", obj.get("labels"))
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
            raise self._error(f"{path} has no uint8 (N, 3072) array under b'data'")
        if data.shape[1] != 3 * 32 * 32:
            raise self._error(f"{path}: b'data' rows have {data.shape[1]} values, not 3072")
        try:
            labels = np.asarray(labels, dtype=np.int64)
        except (TypeError, ValueError):
            labels = None
        if labels is None or labels.shape != (len(data),):
            raise self._error(f"{path} has no list of {len(data)} labels under b'labels'")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise self._error(f"{path} has labels outside 0-9")
        return data.reshape(-1, 3, 32, 32), labels

    @cached_property
    def _splits(self) -> dict[str, TensorImages]:
        folder = self._folder()
        parts = {
            "train": [self._batch(folder / n) for n in _CIFAR_TRAIN],
            "test": [self._batch(folder / "test_batch")],
        }
        raw = {
            s: (np.concatenate([x for x, _ in p]), np.concatenate([y for _, y in p]))
            for s, p in parts.items()
        }
        keep = self._cap_official(len(raw["train"][0]), len(raw["test"][0]))
        return {
            split: TensorImages(self._tensor_from_uint8(x[idx]), _labels_tensor(y[idx]))
            for (split, (x, y)), idx in zip(raw.items(), keep, strict=True)
        }


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
            split: TensorImages(self._decode_all(items, fetch), _labels_tensor(sel.labels[split]))
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
