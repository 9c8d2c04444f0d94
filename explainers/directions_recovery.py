"""How well directions recover a dataset's known factors, as read on generated images.

A direction's movement is each latent's coordinate along it; a factor is what the domain
network's head reads on the latent's image. :func:`explained_shares` gives R (K directions x
F factors), a chance-corrected binned R^2 of each factor on each coordinate, and
:func:`factor_recovery` summarises it per set of directions: ``recovery``, SAP, DCI and MIG.
:mod:`ganbench.explainers.directions_factors` describes the measures in full.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def factor_targets(pred: dict[str, torch.Tensor], heads) -> list[torch.Tensor]:
    """Each factor read by a head as an (N, m) float64 target: the value (m = 1) for a
    regression, the one-hot class (m = levels) for a categorical factor. The total variance
    of a one-hot target (mean squared distance from its mean) is the Gini impurity."""
    out = []
    for h in heads:
        v = pred[h.name].detach().cpu()
        if h.levels > 0:
            out.append(F.one_hot(v.long().clamp(0, h.levels - 1), h.levels).double())
        else:
            out.append(v.double().reshape(-1, 1))
    return out


def total_variance(target: torch.Tensor) -> float:
    """Mean squared distance of the rows of an (N, m) target from their mean."""
    return float(((target - target.mean(0)) ** 2).sum(1).mean()) if len(target) else 0.0


def effective_bins(n: int, bins: int) -> int:
    """Bins for n samples: at most ``bins`` and at most sqrt(n) (at least 2)."""
    return max(2, min(bins, math.isqrt(max(n, 4))))


def rank_bins(coords: torch.Tensor, bins: int) -> torch.Tensor:
    """Equal-frequency bins (N, K) in [0, bins) of each column of ``coords`` (N, K), by rank
    (ties split by sample order): every bin holds N // bins or one more sample."""
    n = coords.shape[0]
    order = coords.argsort(dim=0, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(0, order, torch.arange(n).view(-1, 1).expand_as(order).contiguous())
    return ranks * bins // n


def explained_shares(
    coords: torch.Tensor,
    targets: list[torch.Tensor],
    reference_variance: list[float],
    bins: int = 16,
) -> torch.Tensor:
    """R (K, F): how much of factor f, as read on the images of N latents, movement along
    direction k explains. Direction k's coordinate (N,) is cut into equal-frequency bins; the
    between-bin sum of squares of target f, less what B - 1 bins explain by chance
    (epsilon-squared: SS_B - (B - 1) * SS_W / (N - B), at least 0), per sample, divided by
    the larger of the factor's variance on the generated images and ``reference_variance[f]``
    (its variance as the same reader sees it on real images). So R is an R^2 against the
    mean of the bin, chance-corrected (about 0 for a coordinate the images do not depend
    on), that a generator which varies a factor less than the data does cannot fill."""
    n, k = coords.shape
    b = effective_bins(n, bins)
    if n <= b:
        return torch.zeros(k, len(targets))
    idx = (rank_bins(coords, b) + b * torch.arange(k).view(1, -1)).flatten()  # sample-major
    counts = torch.zeros(k * b, dtype=torch.float64).index_add_(
        0, idx, torch.ones(n * k, dtype=torch.float64)
    )
    out = torch.zeros(k, len(targets), dtype=torch.float64)
    for f, (t, ref) in enumerate(zip(targets, reference_variance, strict=True)):
        tc = t - t.mean(0)
        ss_t = float((tc**2).sum())
        denominator = max(ss_t / n, ref)
        if ss_t <= 0 or denominator <= 0:
            continue
        sums = torch.zeros(k * b, t.shape[1], dtype=torch.float64)
        sums.index_add_(0, idx, tc.repeat_interleave(k, dim=0))
        ss_b = ((sums**2).sum(1) / counts.clamp_min(1)).view(k, b).sum(1)  # (K,)
        ms_w = (ss_t - ss_b).clamp_min(0) / (n - b)
        explained = (ss_b - (b - 1) * ms_w).clamp_min(0) / n
        out[:, f] = (explained / denominator).clamp(0, 1)
    return out.float()


def recovery_summary(shares: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """From R (K, F): ``recovery``, the mean over factors of the best single direction's
    share; ``sap``, the mean over factors of the best minus the second best (the SAP score of
    Kumar et al. 2018, with R in place of its per-code R^2 or accuracy); per factor the best
    share and direction; and DCI's disentanglement and completeness (Eastwood & Williams
    2018) with R as the importance matrix."""
    r = shares.double()
    k, nf = r.shape
    top = r.sort(dim=0, descending=True).values
    best = top[0] if k else torch.zeros(nf, dtype=torch.float64)
    second = top[1] if k > 1 else torch.zeros(nf, dtype=torch.float64)
    return {
        "recovery": float(best.mean()) if nf else 0.0,
        "sap": float((best - second).mean()) if nf else 0.0,
        "best_share": dict(zip(names, best.tolist(), strict=True)),
        "best_direction": dict(zip(names, r.argmax(0).tolist(), strict=True)),
        **dci(r),
    }


def _entropy_complement(p: torch.Tensor, base: int) -> torch.Tensor:
    """1 - H(p) / log(base) for rows of probabilities p (rows summing to 0 give 0)."""
    if base < 2:
        return torch.ones(p.shape[0], dtype=torch.float64)
    logp = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return 1 + (p * logp).sum(1) / math.log(base)


def dci(importance: torch.Tensor) -> dict[str, float]:
    """DCI disentanglement and completeness (Eastwood & Williams 2018) of an importance
    matrix (K codes x F factors): per code 1 - the entropy (base F) of its importance over
    the factors, weighted by its share of the total importance; per factor 1 - the entropy
    (base K) of its importance over the codes, averaged. 0 and 0 when nothing is important."""
    r = importance.double().clamp_min(0)
    total = float(r.sum())
    if total <= 0:
        return {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    rows, cols = r.sum(1), r.sum(0)
    d_k = _entropy_complement(r / rows.clamp_min(1e-30)[:, None], r.shape[1])
    c_f = _entropy_complement((r / cols.clamp_min(1e-30)).t(), r.shape[0])
    weight = rows / total
    c_weight = (cols > 0).double()
    return {
        "dci_disentanglement": float((weight * d_k).sum()),
        "dci_completeness": float((c_f * c_weight).sum() / c_weight.sum().clamp_min(1)),
    }


def mutual_information_gap(
    coords: torch.Tensor, pred: dict[str, torch.Tensor], heads, bins: int = 16
) -> dict[str, Any]:
    """MIG (Chen et al. 2018) of direction coordinates (N, K) against the factors read on the
    images: per factor, I(c_k; f) of the binned coordinate (equal-frequency bins) and the
    factor (its class, or a regression's value in equal-frequency bins), plug-in estimates;
    the largest minus the second largest, divided by H(f); averaged over factors (a factor
    with H(f) = 0 counts 0). Scale-free: it does not see how far a factor varies."""
    n, k = coords.shape
    b = effective_bins(n, bins)
    cb = rank_bins(coords, b)
    gaps = {}
    for h in heads:
        v = pred[h.name].detach().cpu()
        if h.levels > 0:
            fb, levels = v.long().clamp(0, h.levels - 1), h.levels
        else:
            fb, levels = rank_bins(v.double().view(-1, 1), b)[:, 0], b
        pf = torch.bincount(fb, minlength=levels).double() / n
        h_f = float(-(pf[pf > 0] * pf[pf > 0].log()).sum())
        if h_f <= 1e-12 or k == 0:
            gaps[h.name] = 0.0
            continue
        joint = torch.zeros(k, b * levels, dtype=torch.float64)
        joint.scatter_add_(
            1, (cb * levels + fb.view(-1, 1)).t(), torch.ones(k, n, dtype=torch.float64)
        )
        joint = joint.view(k, b, levels) / n
        pc = joint.sum(2, keepdim=True)
        ratio = joint / (pc * pf.view(1, 1, -1)).clamp_min(1e-30)
        mi = torch.where(joint > 0, joint * ratio.clamp_min(1e-30).log(), 0).sum((1, 2))
        top = mi.sort(descending=True).values
        gaps[h.name] = float((top[0] - (top[1] if k > 1 else 0.0)) / h_f)
    return {"mig": sum(gaps.values()) / max(len(gaps), 1), "mig_per_factor": gaps}


def direction_coordinates(latents: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Each latent's coordinate along each direction (N, K): (latent - mean) . A_k."""
    x = latents.double().cpu()
    return (x - x.mean(0)) @ directions.double().cpu()


def factor_recovery(
    latents: torch.Tensor,
    pred: dict[str, torch.Tensor],
    heads,
    arms: dict[str, torch.Tensor],
    reference_variance: list[float],
    bins: int = 16,
) -> dict[str, dict[str, Any]]:
    """For each arm's directions (d, K): R (K, F) (:func:`explained_shares`), its summary
    (recovery, SAP, DCI) and MIG, all on the same latents (N, d) and their read factors."""
    names = [h.name for h in heads]
    targets = factor_targets(pred, heads)
    out = {}
    for arm, a in arms.items():
        coords = direction_coordinates(latents, a)
        shares = explained_shares(coords, targets, reference_variance, bins)
        out[arm] = {"shares": shares, **recovery_summary(shares, names)}
        out[arm] |= mutual_information_gap(coords, pred, heads, bins)
    return out
