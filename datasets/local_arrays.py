"""Local datasets stored as pixel arrays: MNIST and Fashion-MNIST from their four IDX files,
CIFAR-10 from its pickled python batches (read by an unpickler that builds numpy arrays
only). The shared machinery is :class:`ganbench.datasets.local.LocalImageDataset`."""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ganbench.core.registry import register_dataset

from .base import TensorImages
from .local import LocalImageDataset, labels_tensor

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
            out[split] = TensorImages(x, labels_tensor(labels[idx]))
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
            split: TensorImages(self._tensor_from_uint8(x[idx]), labels_tensor(y[idx]))
            for (split, (x, y)), idx in zip(raw.items(), keep, strict=True)
        }
