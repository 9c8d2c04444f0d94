"""The fixed, small inputs the golden fingerprints (:mod:`ganbench.run.fingerprints`) run on:
each architecture at width 8 with the settings that reach every branch in a few steps, each
evaluator at a size that runs in about a second, the architecture and dataset an evaluator
is scored on, tiny folders in each local dataset's on-disk format, a seeded stand-in for the
Inception weights, and the per-process caches of built-in datasets and domain features."""

from __future__ import annotations

import gzip
import pickle
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganbench.core.registry import ARCHITECTURES, DATASETS, EXPLAINERS, METRICS
from ganbench.datasets.base import DatasetSpec

# small versions of each architecture (on top of width 8 where it has a width): a step that
# reaches every branch (IF-GAN's refit of Q, StyleGAN's lazy R1) within 3 steps
ARCHITECTURE_PARAMS: dict[str, dict[str, Any]] = {
    "ifgan": {"refit_every": 2, "fit_samples": 16, "fit_iters": 3, "fit_restarts": 1},
    "stylegan": {"mapping_layers": 2, "r1_interval": 2, "mbstd_group": 2},
}
# each evaluator at a size that runs in about a second on one CPU core
EVALUATOR_PARAMS: dict[str, dict[str, Any]] = {
    "c2st": {"n": 64, "epochs": 1, "width": 8},
    "fid_inception": {"n": 8, "kid_subset_size": 4, "kid_subsets": 2, "batch_size": 8},
    "fidelity": {"n": 64, "kid_subset_size": 16, "kid_subsets": 4},
    "knn_c2st": {"n": 64},
    "memorisation": {"n": 64},
    "mmd": {"n": 64, "permutations": 20},
    "mmd_domain": {"n": 64, "permutations": 20},
    "one_nn": {"n": 64},
    "ppl": {"n": 32, "batch_size": 32},
    "ppl_w": {"n": 32, "batch_size": 32},
    "attention": {"n": 8, "figure_images": 2},
    "code_factors": {"n": 64},
    "codes": {"n_per_category": 8, "sweep_steps": 3, "shuffles": 5, "figure": False},
    "dissection": {
        "n": 32,
        "n_intervention": 16,
        "quantile": 0.9,
        "random_repeats": 1,
        "batch_size": 32,
        "figure": False,
    },
    "filter_groups": {"n": 16, "figure": False},
    "filter_maps": {"n": 16, "random_repeats": 1, "figure": False},
    "latent_sweep": {"n": 2, "figure": False},
    "seams": {"n": 32, "figure": False},
}
_ATTRIBUTION = {
    "n": 4,
    "curve_steps": 4,
    "infidelity_perturbations": 4,
    "sensitivity_perturbations": 2,
    "figure": False,
    # the fingerprint's briefly trained D moves its logit ~1e-4 nats: at the default 0.5-nat
    # floor every faithfulness score would sit at chance and pin little
    "min_response": 1e-4,
}
EVALUATOR_PARAMS |= {
    "deeplift": _ATTRIBUTION,
    "deepliftshap": _ATTRIBUTION | {"shap_baselines": 4},
    "integrated_gradients": _ATTRIBUTION | {"steps": 4},
    "smoothgrad": _ATTRIBUTION | {"samples": 4},
    "lime": _ATTRIBUTION | {"samples": 32},
}
_DIRECTIONS = {
    "directions": 4,
    "steps": 3,
    "batch_size": 8,
    "lr": 1e-3,
    "eval_samples": 32,
    "pca_samples": 64,
    "eval_batch_size": 32,
    "top_k": 2,
    "figure": False,
}
EVALUATOR_PARAMS |= {
    "directions": _DIRECTIONS,
    "directions_w": _DIRECTIONS,
    "directions_factors": _DIRECTIONS | {"n_align": 16},
}
# the architecture that scores an evaluator, by the capability it needs (else DCGAN)
CAPABILITY_MODEL = {
    "attention": "sagan",
    "codes": "infogan",
    "filter_groups": "ifgan",
    "coordinates": "cocogan",
    "styles": "stylegan",
}


GREY32 = DatasetSpec(name="grey32", version="fingerprint", image_size=32, channels=1)


def random_images(spec: DatasetSpec, n: int, seed: int) -> torch.Tensor:
    """``n`` seeded uniform images in [-1, 1] of the spec's shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, spec.channels, spec.image_size, spec.image_size, generator=g) * 2 - 1


def small_architecture(name: str, spec: DatasetSpec, seed: int = 0):
    """``name`` at width 8 (where it has a width) with :data:`ARCHITECTURE_PARAMS`."""
    cls = ARCHITECTURES.get(name)
    params = {"width": 8} if "width" in cls.defaults else {}
    params |= {k: v for k, v in ARCHITECTURE_PARAMS.get(name, {}).items() if k in cls.defaults}
    torch.manual_seed(seed)
    return cls(spec, **params)


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(raw + array.astype(np.uint8).tobytes(), mtime=0))


def _pattern(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def local_root(name: str, root: Path) -> Path:
    """A tiny folder in the on-disk format of local dataset ``name`` (deterministic bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        for prefix, n, seed in (("train", 12, 0), ("t10k", 4, 1)):
            images = _pattern(n, 28, 28, 1, seed)[..., 0]
            _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 0x803)
            _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
        return root
    if name == "cifar10":
        for i, batch in enumerate(
            [
                "data_batch_1",
                "data_batch_2",
                "data_batch_3",
                "data_batch_4",
                "data_batch_5",
                "test_batch",
            ]
        ):
            images = _pattern(3, 32, 32, 3, i).transpose(0, 3, 1, 2).reshape(3, -1)
            body = {b"labels": [(i + j) % 10 for j in range(3)], b"data": images}
            (root / batch).write_bytes(pickle.dumps(body, protocol=4))
        return root
    folder = {"celeba": root / "img_align_celeba", "lsun_bedroom": root / "bedroom"}.get(name)
    for i in range(12):
        where = folder or root / f"class_{i % 2}"
        where.mkdir(parents=True, exist_ok=True)
        pixels = _pattern(1, 24 + 2 * (i % 3), 20 + 4 * (i % 2), 3, 100 + i)[0]
        Image.fromarray(pixels).save(where / f"{i:06d}.png")
    return root


def evaluator_setup(name: str) -> tuple[str | None, str]:
    """The architecture (None: the real-data reference) and dataset an evaluator is scored on."""
    cls = (METRICS if name in METRICS else EXPLAINERS).get(name)
    dataset = "shapes" if "factors" in cls.requires_dataset else "digits"
    arch = "dcgan"
    for capability, model in CAPABILITY_MODEL.items():
        if capability in cls.requires:
            arch = model
    return arch, dataset


def evaluator_params(name: str, tmp: Path) -> dict[str, Any]:
    """The evaluator's fingerprint parameters (fid_inception's weights file written in ``tmp``)."""
    params = dict(EVALUATOR_PARAMS.get(name, {}))
    if name == "fid_inception":
        params["weights"] = str(random_inception_file(tmp / "inception.pth", seed=0))
    cls = (METRICS if name in METRICS else EXPLAINERS).get(name)
    return {k: v for k, v in params.items() if k in cls.defaults}


def random_inception_file(path: Path, seed: int) -> Path:
    """torch-fidelity's Inception-v3 at a seeded He-normal initialisation, saved as its
    weights file is (nothing is read or fetched): a stand-in for the published weights."""
    from unittest import mock

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    cls = FeatureExtractorInceptionV3
    with (
        mock.patch("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url"),
        mock.patch.object(cls, "load_state_dict"),
    ):
        net = cls("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=g) * (2 / fan_in) ** 0.5
                )
    torch.save(net.state_dict(), path)
    return path


_DATASETS: dict[str, Any] = {}
# domain features shared by the evaluators of one process that score the same samples (the same
# small architecture trained the same ten steps, or the real data, on one dataset): the
# extraction in float64 is most of a metric's fingerprint time, and cached features are the
# same numbers as fresh ones (EvalContext.features)
_FEATURE_DIRS: dict[tuple[str | None, str], tempfile.TemporaryDirectory] = {}


def feature_dir(arch_name: str | None, dataset: str) -> Path:
    """The feature cache folder of these samples, made once per process."""
    if (arch_name, dataset) not in _FEATURE_DIRS:
        _FEATURE_DIRS[arch_name, dataset] = tempfile.TemporaryDirectory(prefix="ganbench-fp-")
    return Path(_FEATURE_DIRS[arch_name, dataset].name)


def builtin_dataset(name: str):
    """A built-in dataset at its defaults, made once per process (shapes renders 10,000 images)."""
    if name not in _DATASETS:
        _DATASETS[name] = DATASETS.create(name)
    return _DATASETS[name]
