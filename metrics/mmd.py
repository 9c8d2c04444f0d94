"""Maximum mean discrepancy (Gretton et al. 2012): unbiased MMD², permutation-tested.

Two kernels: one Gaussian with the median-heuristic bandwidth σ (the median pairwise
distance of the pooled sample), and a **multi-bandwidth** kernel, the mean of Gaussians at
σ x (1/4, 1/2, 1, 2, 4) (as in MMD-GAN-style tests: a single σ can be blind to differences
at other scales). Two feature spaces: ``mmd`` on raw pixels, ``mmd_domain`` on the dataset's
domain-network features standardised by the real training features (the same features the
neighbour metrics read, from the trial set's feature cache). Every p-value reuses one
pooled kernel matrix for all permutations.
"""

from __future__ import annotations

import torch

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_metric
from ganbench.core.scores import DISTANCES, NOISY, Score, count_score, p_value_score

from ._stats import paired_features
from .neighbours import standardised_domain_features

# Bound on (permutations per chunk) x (pooled size): 2**22 float64 entries, 32 MiB a buffer.
PERMUTATION_CHUNK_ELEMENTS = 2**22


def squared_distances(points: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances between the rows of ``points`` (N, D); zero diagonal."""
    sq_norms = points.square().sum(1)
    sq = (sq_norms[:, None] + sq_norms[None, :] - 2 * points @ points.T).clamp_min(0)
    return sq.fill_diagonal_(0)


def median_heuristic(sq_distances: torch.Tensor) -> float:
    """Median Euclidean distance over distinct pairs (i < j) of a squared-distance matrix."""
    rows, cols = torch.triu_indices(*sq_distances.shape, offset=1, device=sq_distances.device)
    distances = sq_distances[rows, cols].sqrt().sort().values
    mid = len(distances) // 2
    if len(distances) % 2:
        return float(distances[mid])
    return float((distances[mid - 1] + distances[mid]) / 2)


def gaussian_kernel_matrix(sq_distances: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """k(x, y) = exp(-||x - y||² / (2σ²)) applied to a matrix of squared distances."""
    return torch.exp(-sq_distances / (2 * bandwidth**2))


def permuted_mmd2(kernel: torch.Tensor, n_x: int, orders: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² for each row of ``orders`` (B, N), whose first ``n_x`` entries index sample X.

    One matrix product for all B rows: with A the (B, N) X-membership indicator and K₀ the
    pooled kernel without its diagonal, rowsum(A K₀ ∘ A) is the X-X sum, rowsum(A K₀) minus
    that the X-Y sum, and the total of K₀ minus both (X-Y twice) the Y-Y sum.
    """
    n_y = len(kernel) - n_x
    off_diagonal = kernel - torch.diag(torch.diagonal(kernel))
    in_x = torch.zeros(orders.shape, dtype=kernel.dtype, device=kernel.device)
    in_x.scatter_(1, orders[:, :n_x], 1.0)
    kernel_sums_to_x = in_x @ off_diagonal
    xx = (kernel_sums_to_x * in_x).sum(1)
    xy = kernel_sums_to_x.sum(1) - xx
    yy = off_diagonal.sum() - xx - 2 * xy
    return xx / (n_x * (n_x - 1)) + yy / (n_y * (n_y - 1)) - 2 * xy / (n_x * n_y)


def mmd2_unbiased(kernel: torch.Tensor, n_x: int) -> float:
    """Unbiased MMD² between the first ``n_x`` points of a pooled kernel matrix and the rest."""
    identity = torch.arange(len(kernel), device=kernel.device)[None]
    return float(permuted_mmd2(kernel, n_x, identity)[0])


MULTI_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


def mmd_permutation_test(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    permutations: int,
    seed: int,
    bandwidth_multipliers: tuple[float, ...] = (1.0,),
) -> dict[str, float]:
    """Unbiased MMD² between ``x`` and ``y`` (flattened), its permutation p-value and bandwidth.

    The kernel is the mean of Gaussians at the median-heuristic bandwidth times each of
    ``bandwidth_multipliers`` (one Gaussian by default). The pooled kernel matrix is built
    once, in float64 on the inputs' device; each permutation only relabels which of its
    rows count as X.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 points per sample, got {len(x)} and {len(y)}")
    pooled = torch.cat([x.flatten(1), y.flatten(1)]).to(torch.float64)
    sq = squared_distances(pooled)
    bandwidth = median_heuristic(sq)
    if bandwidth == 0:
        raise ValueError("median pairwise distance is zero: most pooled points are identical")
    kernel = sum(gaussian_kernel_matrix(sq, m * bandwidth) for m in bandwidth_multipliers)
    kernel = kernel / len(bandwidth_multipliers)
    observed = mmd2_unbiased(kernel, len(x))

    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, PERMUTATION_CHUNK_ELEMENTS // len(pooled))
    at_least_observed = 0
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        keys = torch.rand(size, len(pooled), generator=generator, dtype=torch.float64)
        orders = keys.argsort(1).to(kernel.device)  # uniform random permutations, one per row
        at_least_observed += int((permuted_mmd2(kernel, len(x), orders) >= observed).sum())
    return {
        "mmd2": observed,
        "mmd_p_value": (1 + at_least_observed) / (1 + permutations),
        "mmd_bandwidth": bandwidth,
    }


def _mmd_scores(name: str, space: str, what: str) -> tuple[Score, ...]:
    return (
        Score(
            f"{name}2",
            "lower",
            f"unbiased squared maximum mean discrepancy between real and generated {space}, "
            "Gaussian kernel with median-heuristic bandwidth; 0 = same distribution",
            ideal=0.0,
            tolerance=NOISY,
        ),
        p_value_score(
            f"{name}_p_value",
            f"permutation-test p-value of H0: real and generated {space} share one distribution",
        ),
        Score(
            f"{name}2_multi",
            "lower",
            f"the same MMD² with the mean of Gaussian kernels at 1/4, 1/2, 1, 2 and 4 times the "
            f"median-heuristic bandwidth (multi-bandwidth), on {space}",
            ideal=0.0,
            primary=False,
            tolerance=NOISY,
        ),
        p_value_score(
            f"{name}_multi_p_value",
            "permutation-test p-value of the multi-bandwidth MMD²",
            primary=False,
        ),
        Score(
            f"{name}_bandwidth",
            "none",
            f"Gaussian kernel bandwidth σ: median pairwise distance of the pooled {what}",
            primary=False,
        ),
        count_score(f"{name}_n", f"{what} per side used"),
    )


@register_metric("mmd")
class MMD(Evaluator):
    """Kernel two-sample test between real test images and generated images, on raw pixels."""

    group = DISTANCES

    version = "2"
    defaults = {"n": 500, "permutations": 500}
    space = "pixels"
    prefix = "mmd"
    scores = _mmd_scores("mmd", "pixels", "images")

    def samples(self, ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
        return paired_features(ctx, "pixels", self.params["n"])

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        """MMD² (one and several bandwidths) and p-values for up to ``n`` real test and as
        many generated samples."""
        x, y = self.samples(ctx)
        p, name = self.params, self.prefix
        single = mmd_permutation_test(x, y, permutations=p["permutations"], seed=ctx.seed)
        multi = mmd_permutation_test(
            x,
            y,
            permutations=p["permutations"],
            seed=ctx.seed,
            bandwidth_multipliers=MULTI_BANDWIDTHS,
        )
        return {
            f"{name}2": single["mmd2"],
            f"{name}_p_value": single["mmd_p_value"],
            f"{name}2_multi": multi["mmd2"],
            f"{name}_multi_p_value": multi["mmd_p_value"],
            f"{name}_bandwidth": single["mmd_bandwidth"],
            f"{name}_n": float(len(x)),
        }


@register_metric("mmd_domain")
class DomainMMD(MMD):
    """The same kernel two-sample tests on standardised domain-network features."""

    version = "1"
    requires_dataset = frozenset({"domain"})
    prefix = "mmd_domain"
    scores = _mmd_scores("mmd_domain", "standardised domain-network features", "samples")

    def samples(self, ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
        real, fake, _ = standardised_domain_features(ctx, self.params["n"])
        return real, fake
