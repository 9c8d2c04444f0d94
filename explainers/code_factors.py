"""InfoGAN's continuous codes against the data's ground-truth factors (datasets with factors).

The InfoGAN paper reads its continuous codes by eye (rotation and width of MNIST digits).
On a dataset whose factors are known (shapes: x, y, scale, ...) that reading can be
measured: ``n`` images are generated with every code drawn from its training range, the
domain network reads every factor of every image, and each code's dependence on each factor
is taken on ranks, so that any monotone link counts:

* a continuous factor (x, y, scale): the **Spearman rank correlation** |ρ|;
* a categorical factor (shape, colour, background): the **correlation ratio** η of the
  code's ranks over the classes the network reads, sqrt(between-class / total sum of
  squares). A code whose range is cut into bands, each giving one class, has η near 1 (six
  equal bands: 0.986); a code the class does not depend on has η near sqrt((m - 1) / n);
  a head that reads one class for every image (a collapsed generator) gives 0.

A code that controls one factor scores near 1 with it and near 0 with the others.

* ``code_factor_rho``: for each continuous code, its largest dependence (|ρ| or η) over the
  factors, averaged over the codes;
* ``code_factor_rho_noise``, the control: the same for as many dimensions of the
  incompressible noise z, which the InfoGAN objective does not ask to mean anything;
* ``code_factor_distinct``: how many different factors the codes' best factors are (two
  codes that both move x count once).

``code-factors.json`` holds the whole matrix (codes x factors, signed ρ for continuous
factors, η for categorical ones) and which measure each factor used.
"""

from __future__ import annotations

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import NOISY, Score


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Column-wise ranks (0-based, ties given their average rank) of a (N, P) tensor, float64."""
    x = x.double()
    out = torch.empty_like(x)
    for j in range(x.shape[1]):
        col = x[:, j]
        uniq, inverse, counts = torch.unique(col, return_inverse=True, return_counts=True)
        start = torch.cumsum(counts, 0) - counts
        avg = start.double() + (counts.double() - 1) / 2
        out[:, j] = avg[inverse]
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman ρ between every column of a (N, P) and every column of b (N, Q): (P, Q)."""
    ra, rb = ranks(a), ranks(b)
    ra = ra - ra.mean(0)
    rb = rb - rb.mean(0)
    num = ra.T @ rb
    den = ra.norm(dim=0)[:, None] * rb.norm(dim=0)[None, :]
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def correlation_ratio(a: torch.Tensor, labels: torch.Tensor, m: int) -> torch.Tensor:
    """η of every column of a (N, P) on ranks, grouped by ``labels`` (N ints in [0, m)): (P,).

    sqrt(sum_j n_j (mean rank in class j - mean rank)^2 / total sum of squares): 1 when the
    class is a function of the column's bands, ~0 when independent, 0 when one class only."""
    r = ranks(a)
    r = r - r.mean(0)
    labels = labels.long().cpu()
    sums = torch.zeros(m, r.shape[1], dtype=r.dtype).index_add_(0, labels, r)
    sizes = torch.bincount(labels, minlength=m).to(r.dtype)[:, None]
    between = (sums.square() / sizes.clamp_min(1)).sum(0)
    total = r.square().sum(0)
    return torch.where(total > 0, (between / total.clamp_min(1e-300)).clamp(0, 1).sqrt(), 0.0)


def dependence(a: torch.Tensor, read: dict[str, torch.Tensor], heads) -> torch.Tensor:
    """(P, factors): Spearman ρ for continuous heads, correlation ratio η for categorical ones."""
    cols = []
    for h in heads:
        if h.levels > 0:
            cols.append(correlation_ratio(a, read[h.name], h.levels))
        else:
            cols.append(spearman(a, read[h.name].cpu().float()[:, None])[:, 0])
    return torch.stack(cols, 1)


@register_explainer("code_factors")
class CodeFactorExplainer(Evaluator):
    """Rank dependence of InfoGAN's continuous codes on the factors the domain network reads."""

    version = "2"  # 2: categorical factors (shape, colour, background) too, by correlation ratio
    requires = frozenset({"codes"})
    requires_dataset = frozenset({"factors", "domain"})
    defaults = {"n": 1000}
    ranges = {"n": Range(low=10)}
    scores = (
        Score(
            "code_factor_rho",
            "higher",
            "for each continuous code, its largest dependence on a factor the domain network "
            "reads from generated images (|Spearman ρ| for x, y, scale; the correlation ratio "
            "η of its ranks for shape, colour, background), averaged over the codes",
            ideal=1.0,
            control="code_factor_rho_noise",
        ),
        Score(
            "code_factor_rho_noise",
            "none",
            "the same for as many noise dimensions of z (the control)",
            primary=False,
        ),
        Score(
            "code_factor_distinct",
            "higher",
            "number of distinct factors that are some continuous code's most dependent factor",
            tolerance=NOISY,
            integer=True,
        ),
    )

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        model, n = ctx.model, self.params["n"]
        spec = model.code_spec()
        if spec.continuous < 1:
            raise ValueError("code_factors: the architecture has no continuous code")
        net = ctx.domain_network()
        heads = list(net.heads_spec)  # the dataset's factors (requires_dataset: factors)
        if not heads:
            raise ValueError("code_factors: the domain network reads no factor")
        factors = [h.name for h in heads]
        z = model.sample_latent(n, generator=ctx.rng(12))
        x = torch.cat([model.generate(z[i : i + 256]).clamp(-1, 1) for i in range(0, n, 256)])
        read = net.predict(x)
        noise, _, cont = model.split_latent(z.cpu())
        k = spec.continuous
        noise_dims = torch.randperm(noise.shape[1], generator=ctx.rng(13))[:k]
        rho = dependence(cont, read, heads)  # (codes, factors)
        rho_noise = dependence(noise[:, noise_dims], read, heads)
        best = rho.abs().max(1)
        scores = {
            "code_factor_rho": float(best.values.mean()),
            "code_factor_rho_noise": float(rho_noise.abs().max(1).values.mean()),
            "code_factor_distinct": float(len(set(best.indices.tolist()))),
        }
        report = {
            "factors": factors,
            "measure": ["eta" if h.levels > 0 else "spearman" for h in heads],
            "rho": rho.tolist(),
            "best_factor": [factors[i] for i in best.indices.tolist()],
            "noise_dims": noise_dims.tolist(),
            "rho_noise": rho_noise.tolist(),
            "n": n,
            "scores": scores,
        }
        return Evaluation(scores, reports={"code-factors": report})
