"""InfoGAN's continuous codes against the data's ground-truth factors (datasets with factors).

The InfoGAN paper reads its continuous codes by eye (rotation and width of MNIST digits).
On a dataset whose factors are known (shapes: x, y, scale, ...) that reading can be
measured: ``n`` images are generated with every code drawn from its training range, the
domain network reads each continuous factor of every image, and the **Spearman rank
correlation** between each code and each factor is taken. A code that controls one factor
has |ρ| near 1 with it and near 0 with the others.

* ``code_factor_rho``: for each continuous code, its largest |ρ| over the factors, averaged
  over the codes;
* ``code_factor_rho_noise``, the control: the same for as many dimensions of the
  incompressible noise z, which the InfoGAN objective does not ask to mean anything;
* ``code_factor_distinct``: how many different factors the codes' best factors are (two
  codes that both move x count once).

``code-factors.json`` holds the whole correlation matrix.
"""

from __future__ import annotations

import json

import torch

from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_explainer
from ganbench.scores import NOISY, Score


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman ρ between every column of a (N, P) and every column of b (N, Q): (P, Q)."""

    def ranks(x: torch.Tensor) -> torch.Tensor:
        # average ranks for ties, column by column
        x = x.double()
        out = torch.empty_like(x)
        for j in range(x.shape[1]):
            col = x[:, j]
            uniq, inverse, counts = torch.unique(col, return_inverse=True, return_counts=True)
            start = torch.cumsum(counts, 0) - counts
            avg = start.double() + (counts.double() - 1) / 2
            out[:, j] = avg[inverse]
        return out

    ra, rb = ranks(a), ranks(b)
    ra = ra - ra.mean(0)
    rb = rb - rb.mean(0)
    num = ra.T @ rb
    den = ra.norm(dim=0)[:, None] * rb.norm(dim=0)[None, :]
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


@register_explainer("code_factors")
class CodeFactorExplainer(Evaluator):
    """Spearman correlation of InfoGAN's continuous codes with the factors the domain network reads."""

    version = "1"
    requires = frozenset({"codes"})
    requires_dataset = frozenset({"factors", "domain"})
    defaults = {"n": 1000}
    scores = (
        Score(
            "code_factor_rho",
            "higher",
            "for each continuous code, its largest |Spearman ρ| with a continuous factor read by "
            "the domain network from generated images, averaged over the codes",
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
            "number of distinct factors that are some continuous code's best-correlated factor",
            tolerance=NOISY,
        ),
    )

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        model, n = ctx.model, self.params["n"]
        spec = model.code_spec()
        if spec.continuous < 1:
            raise ValueError("code_factors: the architecture has no continuous code")
        if n < 10:
            raise ValueError("code_factors: needs n >= 10")
        net = ctx.domain_network()
        factors = [h.name for h in net.heads_spec if h.levels == 0]
        if not factors:
            raise ValueError("code_factors: the domain network reads no continuous factor")
        z = model.sample_latent(n, generator=ctx.rng(12))
        x = torch.cat([model.generate(z[i : i + 256]).clamp(-1, 1) for i in range(0, n, 256)])
        read = net.predict(x)
        values = torch.stack([read[f].cpu().float() for f in factors], 1)
        noise, _, cont = model.split_latent(z.cpu())
        k = spec.continuous
        noise_dims = torch.randperm(noise.shape[1], generator=ctx.rng(13))[:k]
        rho = spearman(cont, values)  # (codes, factors)
        rho_noise = spearman(noise[:, noise_dims], values)
        best = rho.abs().max(1)
        scores = {
            "code_factor_rho": float(best.values.mean()),
            "code_factor_rho_noise": float(rho_noise.abs().max(1).values.mean()),
            "code_factor_distinct": float(len(set(best.indices.tolist()))),
        }
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        report = {
            "factors": factors,
            "rho": rho.tolist(),
            "best_factor": [factors[i] for i in best.indices.tolist()],
            "noise_dims": noise_dims.tolist(),
            "rho_noise": rho_noise.tolist(),
            "n": n,
            "scores": scores,
        }
        (ctx.artifact_dir / "code-factors.json").write_text(json.dumps(report, indent=1))
        return scores
