"""FID, KID, precision/recall and Inception Score computed by torch-fidelity, offline.

The feature space is the dataset's domain network (trained by the suite on the real
training split), registered as a torch-fidelity feature extractor, so torch-fidelity's
own code computes every number and nothing needs downloading. These are domain-feature
scores: comparable across architectures on one dataset, not with published
Inception-based FIDs.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_metric
from ganbench.scores import Score

from ._stats import paired_samples


class _Uint8Images(Dataset):
    """Images in [-1, 1] as torch-fidelity's inputs expect them: uint8 tensors (C, H, W),
    quantised as a saved PNG would be."""

    def __init__(self, images: torch.Tensor):
        self.images = (
            ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def fidelity_metrics(
    generated: torch.Tensor,
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
    """torch-fidelity's FID, KID, precision, recall and ISC in the domain network's features."""
    import torch_fidelity

    from ganbench.datasets.domain import register_with_torch_fidelity

    name = register_with_torch_fidelity()
    n = min(len(generated), len(real))
    out = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(generated),
        input2=_Uint8Images(real),
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        feature_extractor=name,
        ganbench_domain_network=network,
        kid_subset_size=min(kid_subset_size, max(2, n // 2)),  # subsets that differ
        kid_subsets=kid_subsets,
        prc_neighborhood=prc_neighborhood,
        isc_splits=1,
        batch_size=batch_size,
        rng_seed=seed,
        cuda=cuda,
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes
        verbose=False,
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
        ),
        Score(
            "kid",
            "lower",
            "kernel distance (unbiased MMD², cubic polynomial kernel) between real and generated "
            "domain-network features, mean over random subsets (torch-fidelity)",
            ideal=0.0,
        ),
        Score("kid_std", "none", "standard deviation of KID over the subsets", primary=False),
        Score(
            "precision",
            "higher",
            "fraction of generated images inside the k-NN balls of real features (quality)",
            ideal=1.0,
        ),
        Score(
            "recall",
            "higher",
            "fraction of real images inside the k-NN balls of generated features (coverage)",
            ideal=1.0,
        ),
        Score(
            "isc",
            "higher",
            "Inception Score computed with the domain classifier: exp E[KL(p(y|x) || p(y))]; "
            "at most the number of classes",
            primary=False,
        ),
        Score("fidelity_n", "none", "images per side used", primary=False),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        reals, fakes = paired_samples(ctx, self.params["n"])
        p = self.params
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
