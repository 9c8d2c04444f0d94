"""InfoGAN's latent codes as an intrinsic explanation: do the codes mean what the data means?

For each value of the categorical code, ``n_per_category`` images are generated (noise and
continuous codes drawn at random) and labelled by the dataset's domain classifier (its
class head: the digit for digits, the shape for shapes). The counts matrix
(code value x class) is matched one-to-one with the Hungarian algorithm, as in the
InfoGAN paper's MNIST experiment, and the accuracy is the matched share of all images;
when there are more code values than classes, the unmatched values count as errors. The
same images with their code values shuffled give the chance level of this procedure.

``codes.json`` holds the counts matrix and, for each code value, its matched class, its most
frequent class and their shares, and the classes that are no code value's most frequent class:
where a class is split over two code values or two classes share one, it says which.
"""

from __future__ import annotations

import json

import torch
from scipy.optimize import linear_sum_assignment
from torchvision.utils import save_image

from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_explainer
from ganbench.scores import EXACT, NOISY, Score


def counts_matrix(codes: torch.Tensor, labels: torch.Tensor, k: int, m: int) -> torch.Tensor:
    """(k, m) table: how many images with code value i got class j."""
    flat = codes.long() * m + labels.long()
    return torch.bincount(flat.cpu(), minlength=k * m).reshape(k, m)


def hungarian_accuracy(counts: torch.Tensor) -> tuple[float, dict[int, int]]:
    """Share of images on a one-to-one code->class matching maximising agreement, and the matching."""
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    total = int(counts.sum())
    matched = int(counts.numpy()[rows, cols].sum())
    return matched / max(total, 1), {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def code_report(counts: torch.Tensor, matching: dict[int, int]) -> dict:
    """Per code value: matched class, most frequent class, their shares; unclaimed classes."""
    rows = []
    for value, row in enumerate(counts.tolist()):
        total = max(sum(row), 1)
        top = max(range(len(row)), key=row.__getitem__)
        matched = matching.get(value)
        rows.append(
            {
                "code": value,
                "matched_class": matched,
                "matched_share": row[matched] / total if matched is not None else 0.0,
                "top_class": top,
                "top_share": row[top] / total,
            }
        )
    tops = {r["top_class"] for r in rows}
    return {
        "counts": counts.tolist(),
        "codes": rows,
        "classes_never_top": [c for c in range(counts.shape[1]) if c not in tops],
        "codes_sharing_a_top_class": sorted(
            [r["code"] for r in rows if sum(q["top_class"] == r["top_class"] for q in rows) > 1]
        ),
    }


def purity(counts: torch.Tensor) -> float:
    """Share of images whose class is their code value's most frequent class (many-to-one)."""
    return float(counts.max(1).values.sum()) / max(int(counts.sum()), 1)


@register_explainer("codes")
class CodeExplainer(Evaluator):
    """Categorical-code accuracy against the domain classifier, Q's own recovery of the codes,
    and a figure of code traversals (rows: categories, columns: a continuous-code sweep)."""

    version = "2"  # 2: the figure draws from the trial's generator, not the global RNG
    requires = frozenset({"codes"})
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n_per_category": 200,
        "sweep_steps": 9,
        "sweep_scale": 2.0,  # the sweep spans the training range times this (the paper shows -2..2)
        "shuffles": 200,
        "figure": True,
    }
    scores = (
        Score(
            "code_accuracy",
            "higher",
            "share of generated images whose categorical code, matched one-to-one to the "
            "domain classifier's classes (Hungarian), names their class",
            ideal=1.0,
            control="code_chance",
            tolerance=NOISY,
        ),
        Score(
            "code_chance",
            "none",
            "code_accuracy of the same images with their codes shuffled (mean of the shuffles): "
            "the chance level",
        ),
        Score(
            "code_p_value",
            "none",
            "permutation p-value of code_accuracy against the shuffled codes "
            "((1 + shuffles scoring as high) / (1 + shuffles))",
            primary=False,
        ),
        Score(
            "code_purity",
            "higher",
            "share of images whose class is the most frequent class of their code value",
            primary=False,
            ideal=1.0,
            tolerance=NOISY,
        ),
        Score(
            "q_accuracy",
            "higher",
            "the Q head's accuracy at recovering the categorical code of generated images",
            primary=False,
            ideal=1.0,
        ),
        Score(
            "q_continuous_r2",
            "higher",
            "R² of the Q head's estimates of the continuous codes (mean over codes)",
            primary=False,
            ideal=1.0,
            tolerance=NOISY,
        ),
        Score("code_n", "none", "generated images per code value", primary=False, tolerance=EXACT),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        model, p = ctx.model, self.params
        spec = model.code_spec()
        k, n = spec.categories, p["n_per_category"]
        net = ctx.domain_network()
        if k < 2:
            raise ValueError("codes: the architecture has fewer than 2 categorical code values")
        g = ctx.rng(10)
        images, codes, latents = [], [], []
        with torch.no_grad():
            for value in range(k):
                z = model.sample_latent(n, generator=g, category=value)
                images.append(model.generate(z).clamp(-1, 1))
                codes.append(torch.full((n,), value))
                latents.append(z)
        x, c, z = torch.cat(images), torch.cat(codes), torch.cat(latents)
        head = net.class_head
        m = next(h.levels for h in net.heads_spec if h.name == head)
        labels = net.predict(x)[head].cpu()
        counts = counts_matrix(c, labels, k, m)
        accuracy, matching = hungarian_accuracy(counts)
        shuffled = [
            hungarian_accuracy(counts_matrix(c[torch.randperm(len(c), generator=g)], labels, k, m))[
                0
            ]
            for _ in range(p["shuffles"])
        ]
        q_logits, q_cont = (t.cpu() for t in model.predict_codes(x))
        _, _, cont = model.split_latent(z.cpu())
        out = {
            "code_accuracy": accuracy,
            "code_chance": float(sum(shuffled) / len(shuffled)),
            "code_p_value": (1 + sum(a >= accuracy for a in shuffled)) / (1 + len(shuffled)),
            "code_purity": purity(counts),
            "q_accuracy": float((q_logits.argmax(1) == c).float().mean()),
            "q_continuous_r2": _r2(q_cont, cont) if spec.continuous else 0.0,
            "code_n": float(n),
        }
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        report = {"class_head": head, **code_report(counts, matching), "scores": out}
        (ctx.artifact_dir / "codes.json").write_text(json.dumps(report, indent=1))
        if p["figure"]:
            order = sorted(range(k), key=lambda v: matching.get(v, m + v))  # rows in class order
            self.traversal_figures(ctx, order)
        return out

    @torch.no_grad()
    def traversal_figures(self, ctx: EvalContext, order: list[int]) -> None:
        """codes-c{j}.png: one noise vector; row = categorical value, column = code j swept."""
        model, p = ctx.model, self.params
        spec = model.code_spec()
        low, high = spec.continuous_range
        mid, half = (low + high) / 2, (high - low) / 2 * p["sweep_scale"]
        sweep = torch.linspace(mid - half, mid + half, p["sweep_steps"])
        g = ctx.rng(11)
        base = model.sample_latent(1, generator=g).cpu()
        noise, _, cont = model.split_latent(base)
        for j in range(max(spec.continuous, 1)):
            rows = []
            for value in order:
                values = cont.repeat(len(sweep), 1)
                if spec.continuous:
                    values[:, j] = sweep
                z = model.sample_latent(len(sweep), generator=g, category=value, continuous=values)
                z[:, : spec.noise_dim] = noise.to(z.device)
                rows.append(model.generate(z).clamp(-1, 1).cpu())
            name = f"codes-c{j + 1}.png" if spec.continuous else "codes.png"
            save_image(
                torch.cat(rows),
                str(ctx.artifact_dir / name),
                nrow=len(sweep),
                normalize=True,
                value_range=(-1, 1),
                padding=1,
                pad_value=0.5,
            )


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    resid = (pred - target).square().sum(0)
    total = (target - target.mean(0)).square().sum(0).clamp_min(1e-12)
    return float((1 - resid / total).mean())
