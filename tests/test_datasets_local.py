"""Local loaders read tiny datasets written here in each real on-disk format; nothing downloads."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganbench.core.errors import ConfigError
from ganbench.core.registry import create_dataset, get_dataset, list_datasets
from ganbench.datasets.local import DatasetRootError

LOCAL = ["mnist", "fashion_mnist", "cifar10", "celeba", "lsun_bedroom", "imagefolder"]


# -- writers of the real formats ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> Path:
    """An IDX file: big-endian magic, one uint32 per dimension, then the uint8 body."""
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def square_digit(label: int) -> np.ndarray:
    """28x28 black with a white top-left quadrant; the label lights one pixel of the bottom row."""
    img = np.zeros((28, 28), np.uint8)
    img[:14, :14] = 255
    img[27, label] = 255
    return img


def write_mnist(root: Path, gz: bool = True, n_train: int = 12, n_test: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.stack([square_digit(int(y)) for y in labels])
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, 0x803, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, 0x801, gz)
    return root


_RECONSTRUCT = np.empty(0).__reduce__()[0]


class Py2Pickler(pickle._Pickler):
    """Writes as Python 2's cPickle did for the real CIFAR files: str opcodes, numpy.core paths."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        n = len(data)
        head = (
            pickle.SHORT_BINSTRING + bytes([n])
            if n < 256
            else pickle.BINSTRING + struct.pack("<i", n)
        )
        self.write(head + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def cifar_image(label: int) -> np.ndarray:
    """32x32x3: black, a red top-left quadrant, the label's column of the bottom row green."""
    img = np.zeros((32, 32, 3), np.uint8)
    img[:16, :16, 0] = 255
    img[31, label, 1] = 255
    return img


def write_cifar_batch(path: Path, labels: list[int], py2: bool = True) -> None:
    data = np.stack([cifar_image(y).transpose(2, 0, 1).reshape(-1) for y in labels])
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with path.open("wb") as f:
        if py2:
            Py2Pickler(f, protocol=2).dump(batch)
        else:
            pickle.dump(batch, f, protocol=4)


def write_cifar(root: Path, per_batch: int = 3, n_test: int = 4, py2: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        labels = [(i + j) % 10 for j in range(per_batch)]
        write_cifar_batch(root / f"data_batch_{i}", labels, py2)
    write_cifar_batch(root / "test_batch", [j % 10 for j in range(n_test)], py2)
    return root


def photo(w: int, h: int, grey: bool = False) -> Image.Image:
    """Red bands where a centre crop removes them, white in the centre square, one black
    quadrant of that square: checks the crop, the resize and where pixels land."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 255
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    img[top : top + side, left : left + side] = 255
    half = side // 2
    img[top + half : top + side, left + half : left + side] = 0
    pil = Image.fromarray(img)
    return pil.convert("L") if grey else pil


def write_images(folder: Path, n: int, suffix: str = ".png", size=(40, 24), start: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"{i:06d}{suffix}"
        kw = (
            {"lossless": True} if suffix == ".webp" else {"quality": 95} if suffix == ".jpg" else {}
        )
        photo(*size).save(path, **kw)
        paths.append(path)
    return paths


def assert_photo_pattern(x: torch.Tensor, tol: float = 0.05) -> None:
    """x (N, C, S, S): the centre square's white and black quadrants, the red bands cropped off.

    The outermost pixels may blend a little of what lies just beyond the crop, as they
    would when resizing first and cropping after.
    """
    q = x.shape[-1] // 2
    assert torch.all(x[:, :, 1 : q - 2, 1 : q - 2] > 1 - 2 * tol)  # white
    assert torch.all(x[:, :, q + 2 : -1, q + 2 : -1] < -1 + 2 * tol)  # black
    if x.shape[1] == 3:  # a red band kept would put green at -1 along an edge
        assert torch.all(x[:, 1, : q - 2, : q - 2] > 0.3)


def one_line_naming(err: pytest.ExceptionInfo, *words: str) -> str:
    message = str(err.value)
    assert "\n" not in message and "\r" not in message, message
    for word in words:
        assert word in message, (word, message)
    return message


# -- registry ---------------------------------------------------------------------------------


def test_every_local_loader_is_registered_and_builds_with_defaults():
    assert set(LOCAL) <= set(list_datasets())
    for name in LOCAL:
        cls = get_dataset(name)
        assert cls.version == "1" and cls.layout and "\n" not in cls.layout
        assert cls.__doc__.strip().splitlines()[0]
        ds = create_dataset(name)  # `ganbench list` does this: it must not touch the disk
        assert ds.params["root"] == ""


@pytest.mark.parametrize("name", LOCAL)
def test_unset_root_fails_on_first_use_with_the_layout(name):
    ds = create_dataset(name)
    with pytest.raises(DatasetRootError) as err:
        _ = ds.spec
    one_line_naming(err, f"dataset {name!r}", "no root set", get_dataset(name).layout)
    assert f"[dataset.{name}]" in str(err.value)
    with pytest.raises(DatasetRootError):
        ds.split("train")


@pytest.mark.parametrize("name", LOCAL)
def test_nonexistent_root_is_named(name, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetRootError) as err:
        create_dataset(name, root=str(missing)).split("train")
    one_line_naming(err, f"dataset {name!r}", str(missing), "does not exist")


@pytest.mark.parametrize("name", LOCAL)
def test_root_without_the_files_is_named(name, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image\n")
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset(name, root=str(tmp_path)).spec
    one_line_naming(err, f"dataset {name!r}", str(tmp_path), get_dataset(name).layout)


def test_root_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_mnist(tmp_path / "mnist")
    assert create_dataset("mnist", root="~/mnist").spec.train_size == 12


def test_bad_parameters_are_config_errors_at_construction():
    with pytest.raises(ConfigError, match="channels"):
        create_dataset("mnist", channels=2)
    with pytest.raises(ConfigError, match="test_fraction"):
        create_dataset("imagefolder", test_fraction=1.0)
    with pytest.raises(ConfigError, match="unknown key 'test_fraction'"):
        create_dataset("mnist", test_fraction=0.5)


def test_segmenter_settings_are_stored_and_not_shared():
    ds = create_dataset("celeba", segmenter="/m/seg.pt", segmenter_concepts=["hair", "skin"])
    assert ds.params["segmenter"] == "/m/seg.pt"
    assert ds.params["segmenter_concepts"] == ["hair", "skin"]
    other = create_dataset("celeba")
    other.params["segmenter_concepts"].append("x")
    assert create_dataset("celeba").params["segmenter_concepts"] == []


# -- MNIST / Fashion-MNIST --------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_gzipped_or_plain(tmp_path, gz):
    ds = create_dataset("mnist", root=str(write_mnist(tmp_path, gz=gz)))
    train, test = ds.split("train"), ds.split("test")
    assert train.images.shape == (12, 1, 32, 32) and test.images.shape == (4, 1, 32, 32)
    assert train.images.dtype == torch.float32
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert test.labels.tolist() == [0, 1, 2, 3]
    assert ds.spec == ds.spec.__class__(
        name="mnist",
        version="1",
        image_size=32,
        channels=1,
        num_classes=10,
        train_size=12,
        test_size=4,
    )
    assert ds.split("train") is train  # loaded once


def test_mnist_pixels_land_where_they_were(tmp_path):
    root = write_mnist(tmp_path)
    exact = create_dataset("mnist", root=str(root), image_size=28).split("test")
    expected = torch.from_numpy(square_digit(2).astype(np.float32)) / 127.5 - 1
    assert torch.equal(exact.images[2, 0], expected)  # native size: untouched
    half = create_dataset("mnist", root=str(root), image_size=14).split("train").images
    assert torch.all(half[:, 0, :6, :6] > 0.99) and torch.all(half[:, 0, 8:12, 8:] < -0.99)


def test_mnist_channels_three_repeats_the_grey(tmp_path):
    x = create_dataset("mnist", root=str(write_mnist(tmp_path)), channels=3).split("train").images
    assert x.shape == (12, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert create_dataset("mnist", root=str(tmp_path), channels=3).spec.channels == 3


def test_torchvision_layouts_are_found(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=False)
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    assert create_dataset("mnist", root=str(tmp_path)).spec.train_size == 12
    spec = create_dataset("fashion_mnist", root=str(tmp_path)).spec
    assert (spec.name, spec.train_size, spec.test_size, spec.num_classes) == (
        "fashion_mnist",
        12,
        4,
        10,
    )


def test_mnist_max_images_keeps_the_split_proportion_and_is_deterministic(tmp_path):
    root = str(write_mnist(tmp_path, n_train=30, n_test=10))
    ds = create_dataset("mnist", root=root, max_images=8)
    assert (ds.spec.train_size, ds.spec.test_size) == (6, 2)
    again = create_dataset("mnist", root=root, max_images=8)
    assert torch.equal(ds.split("train").labels, again.split("train").labels)
    assert torch.equal(ds.split("train").images, again.split("train").images)
    picks = {
        tuple(
            create_dataset("mnist", root=root, max_images=8, split_seed=s)
            .split("train")
            .labels.tolist()
        )
        for s in range(5)
    }
    assert len(picks) > 1  # the seed chooses the subset


def test_missing_idx_file_is_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("mnist", root=str(tmp_path)).spec
    one_line_naming(err, "missing t10k-labels-idx1-ubyte[.gz]", str(tmp_path))


def test_corrupt_idx_magic_is_refused(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2:4] = b"\x08\x01"  # a labels magic where images belong
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetRootError) as err:
        create_dataset("mnist", root=str(tmp_path)).split("train")
    one_line_naming(err, str(path), "0x00000801", "0x00000803")


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_file_is_refused(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetRootError) as err:
        create_dataset("mnist", root=str(tmp_path)).split("train")
    one_line_naming(err, str(path), "truncated")


def test_idx_images_and_labels_must_agree(tmp_path):
    write_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5), 0x801, gz=False)
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("mnist", root=str(tmp_path)).spec
    one_line_naming(err, "12 images", "5 labels")


# -- CIFAR-10 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("py2", [True, False], ids=["python2-cpickle", "python3-pickle"])
def test_cifar_reads_the_pickled_batches(tmp_path, py2):
    write_cifar(tmp_path / "cifar-10-batches-py", py2=py2)
    ds = create_dataset("cifar10", root=str(tmp_path))
    train, test = ds.split("train"), ds.split("test")
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.labels.tolist() == [(i + j) % 10 for i in range(1, 6) for j in range(3)]
    assert test.labels.dtype == torch.int64 and test.labels.tolist() == [0, 1, 2, 3]
    expected = torch.from_numpy(cifar_image(3).transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
    assert torch.equal(test.images[3], expected)  # channel planes and rows in the right order
    spec = ds.spec
    assert (spec.channels, spec.num_classes, spec.train_size, spec.test_size) == (3, 10, 15, 4)


def test_cifar_to_grey_uses_luminance(tmp_path):
    ds = create_dataset("cifar10", root=str(write_cifar(tmp_path)), channels=1, image_size=16)
    x = ds.split("test").images
    assert x.shape == (4, 1, 16, 16) and ds.spec.channels == 1
    red = 0.299 * 2 - 1  # pure red's luma, scaled to [-1, 1]
    assert torch.allclose(x[:, 0, :6, :6], torch.full((4, 6, 6), red), atol=1e-5)
    assert torch.allclose(x[:, 0, 9:14, 9:], torch.full((4, 5, 7), -1.0), atol=1e-5)


def test_cifar_missing_batch_is_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("cifar10", root=str(tmp_path)).spec
    one_line_naming(err, "missing data_batch_4", str(tmp_path))


class _RunsAShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("py2", [True, False], ids=["python2-cpickle", "python3-pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, py2):
    root = write_cifar(tmp_path / "data")
    marker = tmp_path / "pwned"
    with (root / "data_batch_1").open("wb") as f:
        payload = {b"data": _RunsAShell(marker), b"labels": [0]}
        if py2:
            Py2Pickler(f, protocol=2).dump(payload)
        else:
            pickle.dump(payload, f, protocol=4)
    with pytest.raises(DatasetRootError) as err:
        create_dataset("cifar10", root=str(root)).split("train")
    one_line_naming(err, str(root / "data_batch_1"), "refused", "system")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, words",
    [
        ([1, 2, 3], "not a CIFAR-10 batch dict"),
        ({b"labels": [0]}, "b'data'"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "not 3072"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
    ],
)
def test_cifar_batch_of_the_wrong_structure_is_refused(tmp_path, payload, words):
    root = write_cifar(tmp_path)
    with (root / "test_batch").open("wb") as f:
        pickle.dump(payload, f, protocol=4)
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("cifar10", root=str(root)).spec
    one_line_naming(err, str(root / "test_batch"), words)


def test_truncated_cifar_batch_is_refused(tmp_path):
    root = write_cifar(tmp_path)
    path = root / "data_batch_2"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("cifar10", root=str(root)).spec
    one_line_naming(err, str(path), "not a readable CIFAR-10 batch")


# -- CelebA -----------------------------------------------------------------------------------


def write_celeba(root: Path, n: int = 6, partition: bool = True) -> list[Path]:
    paths = write_images(root / "img_align_celeba", n, ".jpg", size=(40, 48))
    if partition:
        lines = [f"{p.name} {i * 3 // n}" for i, p in enumerate(paths)]
        (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return paths


def test_celeba_uses_the_official_partition(tmp_path):
    write_celeba(tmp_path)  # 2 train, 2 valid, 2 test
    ds = create_dataset("celeba", root=str(tmp_path), image_size=16)
    spec = ds.spec
    assert (spec.train_size, spec.test_size, spec.channels, spec.num_classes) == (4, 2, 3, None)
    train = ds.split("train")
    assert train.labels is None and train.images.shape == (4, 3, 16, 16)
    assert_photo_pattern(train.images, tol=0.1)  # JPEG: a little ringing


def test_celeba_without_partition_splits_by_fraction_and_seed(tmp_path):
    write_celeba(tmp_path, n=10, partition=False)
    ds = create_dataset("celeba", root=str(tmp_path), test_fraction=0.3, image_size=8)
    assert (ds.spec.train_size, ds.spec.test_size) == (7, 3)
    again = create_dataset("celeba", root=str(tmp_path), test_fraction=0.3, image_size=8)
    assert ds._selection.items == again._selection.items
    others = {
        tuple(create_dataset("celeba", root=str(tmp_path), split_seed=s)._selection.items["test"])
        for s in range(5)
    }
    assert len(others) > 1


def test_celeba_images_missing_from_the_partition_are_an_error(tmp_path):
    write_celeba(tmp_path)
    write_images(tmp_path / "img_align_celeba", 1, ".jpg", start=99)
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("celeba", root=str(tmp_path)).spec
    one_line_naming(err, "000099.jpg", "list_eval_partition.txt")


def test_celeba_malformed_partition_line_is_named(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").write_text("000000.jpg 0\n000001.jpg seven\n")
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("celeba", root=str(tmp_path)).spec
    one_line_naming(err, "line 2", "list_eval_partition.txt")


def test_celeba_max_images_caps_both_official_splits(tmp_path):
    write_celeba(tmp_path, n=12)  # 8 train+valid, 4 test
    spec = create_dataset("celeba", root=str(tmp_path), max_images=6).spec
    assert (spec.train_size, spec.test_size) == (4, 2)


# -- LSUN bedrooms ----------------------------------------------------------------------------


def test_lsun_reads_a_folder_tree_of_images(tmp_path):
    write_images(tmp_path / "a", 3, ".webp")
    write_images(tmp_path / "b" / "c", 3, ".jpg", start=3)
    ds = create_dataset("lsun_bedroom", root=str(tmp_path), test_fraction=0.34, image_size=12)
    assert (ds.spec.train_size, ds.spec.test_size, ds.spec.num_classes) == (4, 2, None)
    x = torch.cat([ds.split("train").images, ds.split("test").images])
    assert x.shape == (6, 3, 12, 12) and ds.split("train").labels is None
    assert_photo_pattern(x, tol=0.1)


def _encoded(suffix: str) -> bytes:
    buf = io.BytesIO()
    photo(48, 32).save(buf, format={"webp": "WEBP", "jpg": "JPEG"}[suffix], lossless=True)
    return buf.getvalue()


def write_lmdb(folder: Path, n: int) -> Path:
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(folder), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(n):  # LSUN's keys are hashes: arbitrary bytes
            txn.put(f"{i * 7919:040x}".encode(), _encoded("webp" if i % 2 else "jpg"))
    env.close()
    return folder


def test_lsun_reads_the_lmdb_export(tmp_path):
    root = write_lmdb(tmp_path / "bedroom_train_lmdb", 8)
    ds = create_dataset("lsun_bedroom", root=str(root), test_fraction=0.25, image_size=16)
    assert (ds.spec.train_size, ds.spec.test_size) == (6, 2)
    x = ds.split("train").images
    assert x.shape == (6, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert_photo_pattern(x, tol=0.1)
    capped = create_dataset("lsun_bedroom", root=str(root / "data.mdb"), max_images=3).spec
    assert (capped.train_size, capped.test_size) == (2, 1)  # 10% of 3 rounds up to one


def test_lsun_lmdb_without_the_package_says_pip_install(tmp_path, monkeypatch):
    root = tmp_path / "bedroom_train_lmdb"
    root.mkdir()
    (root / "data.mdb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "lmdb", None)  # import lmdb now raises ImportError
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("lsun_bedroom", root=str(root)).spec
    one_line_naming(err, "pip install lmdb", str(root))


def test_lsun_empty_lmdb_is_an_error(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    lmdb.open(str(tmp_path), map_size=1 << 20).close()
    with pytest.raises(DatasetRootError) as err:
        _ = create_dataset("lsun_bedroom", root=str(tmp_path)).spec
    one_line_naming(err, str(tmp_path), "no records")


# -- any image folder -------------------------------------------------------------------------


def test_imagefolder_subfolders_are_classes(tmp_path):
    write_images(tmp_path / "dramas", 4)
    write_images(tmp_path / "comedies" / "old", 4, ".jpg")
    ds = create_dataset("imagefolder", root=str(tmp_path), test_fraction=0.25, image_size=16)
    spec = ds.spec
    assert (spec.num_classes, spec.train_size, spec.test_size) == (2, 6, 2)
    labels = torch.cat([ds.split("train").labels, ds.split("test").labels])
    assert labels.dtype == torch.int64 and sorted(labels.tolist()) == [0] * 4 + [1] * 4
    train = ds.split("train")
    for x, y in zip(train.images, train.labels, strict=True):
        assert_photo_pattern(x[None], tol=0.005 if y == 1 else 0.1)  # 1: dramas, PNG, exact


@pytest.mark.parametrize("layout", ["flat", "mixed", "one_subfolder"])
def test_imagefolder_without_two_class_folders_is_unlabelled(tmp_path, layout):
    if layout in ("flat", "mixed"):
        write_images(tmp_path, 3)
    if layout in ("mixed", "one_subfolder"):
        write_images(tmp_path / "posters", 3, start=3)
    ds = create_dataset("imagefolder", root=str(tmp_path))
    assert ds.spec.num_classes is None and ds.split("train").labels is None


def test_imagefolder_pattern_survives_crop_and_resize(tmp_path):
    write_images(tmp_path, 2, size=(64, 32))  # landscape: red bands left and right
    write_images(tmp_path, 2, size=(20, 50), start=2)  # portrait, upscaled
    x = create_dataset("imagefolder", root=str(tmp_path), test_fraction=0.0).split("train").images
    assert x.shape == (4, 3, 32, 32)
    assert_photo_pattern(x)


def test_imagefolder_channel_conversion_both_ways(tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(2):
        photo(32, 32, grey=True).save(grey / f"{i}.png")
    x = create_dataset("imagefolder", root=str(grey), test_fraction=0.0).split("train").images
    assert x.shape == (2, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    colour = tmp_path / "colour"
    write_images(colour, 2, size=(32, 32))
    ds = create_dataset("imagefolder", root=str(colour), channels=1, test_fraction=0.0)
    assert ds.spec.channels == 1
    x = ds.split("train").images
    assert x.shape == (2, 1, 32, 32)
    assert abs(x[0, 0, 0, 0].item() - 1.0) < 0.01 and abs(x[0, 0, -1, -1].item() + 1.0) < 0.01


def test_imagefolder_max_images_then_split(tmp_path):
    write_images(tmp_path, 10)
    spec = create_dataset("imagefolder", root=str(tmp_path), max_images=4, test_fraction=0.25).spec
    assert (spec.train_size, spec.test_size) == (3, 1)
    tiny = create_dataset("imagefolder", root=str(tmp_path), max_images=2, test_fraction=0.01)
    assert (tiny.spec.train_size, tiny.spec.test_size) == (1, 1)  # never an empty test split


def test_undecodable_image_is_named(tmp_path):
    write_images(tmp_path, 2)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DatasetRootError) as err:
        create_dataset("imagefolder", root=str(tmp_path), test_fraction=0.0).split("train")
    one_line_naming(err, str(bad), "cannot decode")


def test_hidden_files_are_skipped(tmp_path):
    write_images(tmp_path, 2)
    (tmp_path / "._000000.png").write_bytes(b"AppleDouble junk")
    assert create_dataset("imagefolder", root=str(tmp_path), test_fraction=0.0).spec.train_size == 2


def test_unknown_split_is_a_value_error(tmp_path):
    ds = create_dataset("mnist", root=str(write_mnist(tmp_path)))
    with pytest.raises(ValueError, match="'train' or 'test'"):
        ds.split("valid")
