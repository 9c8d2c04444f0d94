"""Maximum mean discrepancy (Gretton et al. 2012): unbiased MMD² on pixels, permutation-tested."""

from __future__ import annotations

import torch

from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_metric
from ganbench.scores import Score

from ._stats import paired_samples

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


def mmd_permutation_test(
    x: torch.Tensor, y: torch.Tensor, *, permutations: int, seed: int
) -> dict[str, float]:
    """Unbiased MMD² between ``x`` and ``y`` (flattened), its permutation p-value and bandwidth.

    The pooled kernel matrix is built once, in float64 on the inputs' device; each permutation
    only relabels which of its rows count as X.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 points per sample, got {len(x)} and {len(y)}")
    pooled = torch.cat([x.flatten(1), y.flatten(1)]).to(torch.float64)
    sq = squared_distances(pooled)
    bandwidth = median_heuristic(sq)
    if bandwidth == 0:
        raise ValueError("median pairwise distance is zero: most pooled points are identical")
    kernel = gaussian_kernel_matrix(sq, bandwidth)
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


@register_metric("mmd")
class MMD(Evaluator):
    """Kernel two-sample test between real test images and generated images, on raw pixels."""

    version = "1"
    defaults = {"n": 500, "permutations": 500}
    scores = (
        Score(
            "mmd2",
            "lower",
            "unbiased squared maximum mean discrepancy between real and generated pixels, "
            "Gaussian kernel with median-heuristic bandwidth; 0 = same distribution",
            ideal=0.0,
        ),
        Score(
            "mmd_p_value",
            "none",
            "permutation-test p-value of H0: real and generated pixels share one distribution",
        ),
        Score(
            "mmd_bandwidth",
            "none",
            "Gaussian kernel bandwidth σ: median pairwise distance of the pooled images",
            primary=False,
        ),
        Score("mmd_n", "none", "images per side used", primary=False),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        """MMD² and its p-value for up to ``n`` real test and ``n`` generated images."""
        reals, fakes = paired_samples(ctx, self.params["n"])
        result = mmd_permutation_test(
            reals, fakes, permutations=self.params["permutations"], seed=ctx.seed
        )
        return {**result, "mmd_n": float(len(reals))}
