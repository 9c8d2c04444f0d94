"""FID, KID, precision/recall and Inception Score computed by torch-fidelity, offline.

The feature space is the dataset's domain network (trained by the suite on the real
training split), registered as a torch-fidelity feature extractor, so torch-fidelity's
own code computes every number and nothing needs downloading. These are domain-feature
scores: comparable across architectures on one dataset, not with published
Inception-based FIDs.

The generated side goes in as torch-fidelity's own generative-model input: the model is
wrapped in ``GenerativeModelModuleWrapper`` with N(0, 1) noise of the latent's width, which
the architecture's ``latent_from_normal`` maps onto its prior (InfoGAN's one-hot and uniform
codes, COCO-GAN's U(-1, 1)), so torch-fidelity draws the latents and generates the images
itself. The real-data reference (no model) compares two disjoint real splits as datasets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ganbench.core.errors import GanbenchError
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_metric
from ganbench.core.scores import DISTANCES, FIDELITY, NOISY, Score, count_score

from ._stats import paired_samples


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as torch-fidelity's inputs expect them: uint8, quantised as a saved
    PNG would be."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class _Uint8Images(Dataset):
    """A tensor of images in [-1, 1] as a torch-fidelity dataset of uint8 (C, H, W) tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = to_uint8(images.cpu())

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class GeneratorForFidelity(nn.Module):
    """An architecture as the module torch-fidelity's generator wrapper calls: N(0, 1) noise
    (n, latent_dim) in, uint8 images out. The architecture is held outside the module tree,
    so the wrapper's ``eval()``/``cuda()`` leave it where the evaluation put it."""

    def __init__(self, model, transform=None) -> None:
        super().__init__()
        self._model = (model,)
        self._transform = transform  # images in [-1, 1] -> images in [-1, 1] (e.g. grey to RGB)

    @torch.no_grad()
    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        model = self._model[0]
        # torch-fidelity draws float32 noise; the model computes in the default dtype
        images = model.generate(model.latent_from_normal(noise.to(torch.get_default_dtype())))
        return to_uint8(self._transform(images) if self._transform else images)


def fidelity_generator(model, transform=None):
    """torch-fidelity's ``GenerativeModelModuleWrapper`` around an architecture."""
    from torch_fidelity import GenerativeModelModuleWrapper  # slow to import: only when used

    return GenerativeModelModuleWrapper(
        GeneratorForFidelity(model, transform), model.latent_dim, "normal", 0, make_eval=False
    )


def fidelity_inputs(generated, n_real: int, transform=None) -> tuple[int, dict]:
    """(images per side, torch-fidelity's ``input1`` keywords) for a tensor of generated
    images or an architecture to sample ``n_real`` images from."""
    if isinstance(generated, torch.Tensor):
        images = transform(generated) if transform else generated
        return min(len(generated), n_real), {"input1": _Uint8Images(images)}
    return n_real, {
        "input1": fidelity_generator(generated, transform),
        "input1_model_num_samples": n_real,
    }


def kid_subset(kid_subset_size: int, n: int) -> int:
    """KID's subset size for n images per side: at most half of them, so that the subsets
    differ (at least 2)."""
    return min(kid_subset_size, max(2, n // 2))


def calculate_metrics(
    generated,
    real: torch.Tensor,
    *,
    transform=None,
    kid_subset_size: int,
    kid_subsets: int,
    batch_size: int,
    seed: int,
    cuda: bool,
    **metrics: Any,
) -> dict[str, Any]:
    """torch-fidelity's ``calculate_metrics`` as ``fidelity`` and ``fid_inception`` call it:
    ``generated`` (images in [-1, 1], or an architecture that torch-fidelity samples
    ``len(real)`` images from) against ``real``, both through ``transform``; KID subsets of
    :func:`kid_subset`; seeded by ``seed``; nothing cached, no worker processes, no output.
    ``metrics``: which metrics, in which features, with their own settings."""
    import torch_fidelity  # slow to import: only when used

    n, first = fidelity_inputs(generated, len(real), transform)
    return torch_fidelity.calculate_metrics(
        **first,
        input2=_Uint8Images(transform(real) if transform else real),
        kid_subset_size=kid_subset(kid_subset_size, n),
        kid_subsets=kid_subsets,
        batch_size=batch_size,
        rng_seed=seed,
        cuda=cuda,
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes
        verbose=False,
        **metrics,
    )


def fidelity_metrics(
    generated,
    real: torch.Tensor,
    network,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    prc_neighborhood: int,
    batch_size: int,
    seed: int,
    cuda: bool,
) -> dict[str, float]:
    """torch-fidelity's FID, KID, precision, recall and ISC in the domain network's features.

    ``generated``: a tensor of images in [-1, 1], or an architecture, which torch-fidelity
    samples ``len(real)`` images from through :func:`fidelity_generator` (latents drawn from
    its ``rng_seed``)."""
    out = calculate_metrics(
        generated,
        real,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        batch_size=batch_size,
        seed=seed,
        cuda=cuda,
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        feature_extractor=register_with_torch_fidelity(),
        ganbench_domain_network=network,
        prc_neighborhood=prc_neighborhood,
        isc_splits=1,
    )
    return {
        "fid": out["frechet_inception_distance"],
        "kid": out["kernel_inception_distance_mean"],
        "kid_std": out["kernel_inception_distance_std"],
        "precision": out["precision"],
        "recall": out["recall"],
        "isc": out["inception_score_mean"],
    }


@register_metric("fidelity")
class Fidelity(Evaluator):
    """FID, KID, precision/recall and IS in the dataset's domain-network features, by torch-fidelity."""

    group = DISTANCES

    version = "1"
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n": 1000,
        "kid_subset_size": 1000,
        "kid_subsets": 100,
        "prc_neighborhood": 3,
        "batch_size": 256,
    }
    scores = (
        Score(
            "fid",
            "lower",
            "Fréchet distance between Gaussians fitted to real test and generated images' "
            "domain-network features (torch-fidelity); 0 = same mean and covariance",
            ideal=0.0,
            tolerance=NOISY,
        ),
        Score(
            "kid",
            "lower",
            "kernel distance (unbiased MMD², cubic polynomial kernel) between real and generated "
            "domain-network features, mean over random subsets (torch-fidelity)",
            ideal=0.0,
            tolerance=NOISY,
        ),
        Score("kid_std", "none", "standard deviation of KID over the subsets", primary=False),
        Score(
            "precision",
            "higher",
            "fraction of generated images inside the k-NN balls of real features (quality)",
            ideal=1.0,
            tolerance=NOISY,
            group=FIDELITY,
        ),
        Score(
            "recall",
            "higher",
            "fraction of real images inside the k-NN balls of generated features (coverage)",
            ideal=1.0,
            tolerance=NOISY,
            group=FIDELITY,
        ),
        Score(
            "isc",
            "higher",
            "Inception Score computed with the domain classifier: exp E[KL(p(y|x) || p(y))]; "
            "at most the number of classes",
            primary=False,
            tolerance=NOISY,
        ),
        count_score("fidelity_n"),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        p = self.params
        if ctx.model is None:  # the real-data reference: two disjoint real splits
            reals, fakes = paired_samples(ctx, p["n"])
        else:
            reals, fakes = ctx.reals(p["n"], "test"), ctx.model
        scores = fidelity_metrics(
            fakes,
            reals,
            ctx.domain_network(),
            kid_subset_size=p["kid_subset_size"],
            kid_subsets=p["kid_subsets"],
            prc_neighborhood=p["prc_neighborhood"],
            batch_size=p["batch_size"],
            seed=ctx.seed,
            cuda=ctx.device.type == "cuda",
        )
        return {**scores, "fidelity_n": float(len(reals))}


FIDELITY_EXTRACTOR = "ganbench-domain"


def register_with_torch_fidelity() -> str:
    """Register the domain network as a torch-fidelity feature extractor (once); returns its name.

    torch-fidelity builds the extractor itself and passes every keyword of
    ``calculate_metrics`` to it: ours reads the network from ``ganbench_domain_network``.
    Inputs are uint8 images (N, C, H, W) as torch-fidelity hands them over; features are
    ``features`` (the penultimate embedding: FID, KID, precision/recall) and ``logits``
    (the class head: the Inception Score computed with the domain classifier).
    """
    # torch-fidelity is slow to import: only when used
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FIDELITY_EXTRACTOR in FEATURE_EXTRACTORS_REGISTRY:
        return FIDELITY_EXTRACTOR

    class DomainFeatureExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, ganbench_domain_network=None, **kwargs):
            super().__init__(name, features_list)
            if ganbench_domain_network is None:
                raise GanbenchError(
                    f"{name}: pass the network as calculate_metrics(..., ganbench_domain_network=net)"
                )
            self.net = ganbench_domain_network

        @staticmethod
        def get_provided_features_list():
            return ("features", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits"}.get(metric, "features")

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            dtype = next(self.net.parameters()).dtype  # float32, or float64 in fingerprints
            x = x.to(dtype) / 127.5 - 1 if x.dtype == torch.uint8 else x.to(dtype)
            f = self.net.features(x)
            out = {"features": f, "logits": self.net.heads[self.net.class_head](f)}
            return tuple(out[name] for name in self.features_list)

    register_feature_extractor(FIDELITY_EXTRACTOR, DomainFeatureExtractor)
    return FIDELITY_EXTRACTOR
