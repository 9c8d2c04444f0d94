"""InfoGAN's latent codes as an intrinsic explanation: do the codes mean what the data means?

For each value of the categorical code, ``n_per_category`` images are generated (noise and
continuous codes drawn at random) and labelled by every categorical head of the dataset's
domain network (digits: the digit; shapes: the shape, the colour and the background).

**Which head.** A categorical code is unsupervised: on digits it may find the digit, on
shapes the background or the colour as readily as the shape. Unless ``head`` names one, the
code is scored against the head it carries the most information about: the largest
``I(code; class) / H(class)``, the share of the class's entropy that knowing the code value
removes (1: the code value determines the class; 0: independent of it, or every image has
one class). Ties go to the network's class head. Digits' network has one head, the digit.

**Matching.** The counts table (code value x class) is matched with the Hungarian algorithm,
each class taking at most ``ceil(k / m)`` of the k code values (m classes). With k <= m
that is the InfoGAN paper's one-to-one matching; with more code values than classes (10
values on shapes' 3 shapes) a class can take its share of them, so a code that determines
the class scores 1, while a collapsed generator (every image one class) can match only
``ceil(k / m)`` values and scores ``ceil(k / m) / k``, its chance level. The accuracy is the
matched share of all images.

**Chance.** The same images with their code values shuffled, scored against the same head,
give ``code_chance`` and ``code_information_chance``; ``code_p_value`` counts the shuffles
whose best head (chosen again on each) carries as much information as the code's.

Artifacts: ``codes.json`` (the chosen head, every candidate head's counts, accuracy and
information, and for the chosen head each code value's matched and most frequent class);
``codes_per_class.json`` (the per-class table the board shows: see
:func:`~ganbench.explainers.codes_matching.per_class_table`);
``codes-c{j}.png`` (code traversals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.plots import traversal_figure
from ganbench.core.registry import register_explainer
from ganbench.core.scores import NOISY, UNIT_COUNT, Score, count_score, p_value_score

from .codes_matching import (
    candidate_report,
    choose_head,
    class_names,
    code_report,
    matched_accuracy,
    per_class_table,
    shuffled_codes,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def generate_per_code(
    model, k: int, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` images for each of the k categorical code values (noise and continuous codes
    drawn at random): the images in [-1, 1], their code values and their latents."""
    images, codes, latents = [], [], []
    with torch.no_grad():
        for value in range(k):
            z = model.sample_latent(n, generator=generator, category=value)
            images.append(model.generate(z).clamp(-1, 1))
            codes.append(torch.full((n,), value))
            latents.append(z)
    return torch.cat(images), torch.cat(codes), torch.cat(latents)


@register_explainer("codes")
class CodeExplainer(Evaluator):
    """Categorical-code accuracy against the domain network's head the code is about, Q's own
    recovery of the codes, and a figure of code traversals (rows: categories, columns: a
    continuous-code sweep)."""

    # 2: the figure draws from the trial's generator, not the global RNG
    # 3: every categorical head is a candidate (shapes: shape, colour, background), the one the
    #    code informs most is scored; a class may take ceil(k/m) code values; code_purity
    #    (1.0 for a collapsed generator) replaced by code_information
    version = "3"
    requires = frozenset({"codes"})
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n_per_category": 200,
        "sweep_steps": 9,
        "sweep_scale": 2.0,  # the sweep spans the training range times this (the paper shows -2..2)
        "shuffles": 200,
        "head": "auto",  # a categorical head of the domain network, or the one the code informs most
        "figure": True,
    }
    figures = ("codes-c*.png", "codes.png")  # codes.png: an architecture without continuous codes
    scores = (
        Score(
            "code_accuracy",
            "higher",
            "share of generated images whose categorical code value, matched to the classes of "
            "the domain network's head the code is about (Hungarian; a class may take "
            "ceil(code values / classes) code values), names their class",
            ideal=1.0,
            control="code_chance",
            tolerance=NOISY,
        ),
        Score(
            "code_chance",
            "none",
            "code_accuracy of the same images with their codes shuffled, against the same head "
            "(mean of the shuffles): the chance level",
        ),
        p_value_score(
            "code_p_value",
            "permutation p-value of code_information against the shuffled codes, the head "
            "chosen again on each shuffle ((1 + shuffles scoring as high) / (1 + shuffles))",
            primary=False,
        ),
        Score(
            "code_information",
            "higher",
            "I(code; class) / H(class) on the scored head: the share of the class's "
            "uncertainty that knowing the code value removes (1: the code determines the "
            "class; 0: independent of it, or every image one class, as a collapsed generator)",
            primary=False,
            ideal=1.0,
            control="code_information_chance",
            tolerance=NOISY,
        ),
        Score(
            "code_information_chance",
            "none",
            "code_information of the same images with their codes shuffled, on the same head "
            "(mean of the shuffles)",
            primary=False,
        ),
        Score(
            "code_classes",
            "none",
            "classes of the head the code is scored against (digits: 10; shapes: 3 shapes, "
            "6 colours or 4 backgrounds)",
            primary=False,
            tolerance=UNIT_COUNT,
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
        count_score("code_n", "generated images per code value"),
    )

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        model, p = ctx.model, self.params
        spec = model.code_spec()
        k, n = spec.categories, p["n_per_category"]
        net = ctx.domain_network()
        if k < 2:
            raise ValueError("codes: the architecture has fewer than 2 categorical code values")
        heads = self.candidate_heads(net)
        g = ctx.rng(10)
        x, c, z = generate_per_code(model, k, n, g)
        read = net.predict(x)
        labels = {name: read[name].cpu().long() for name in heads}
        head, counts, information = choose_head(c, labels, heads, k)
        m = heads[head]
        accuracy, matching = matched_accuracy(counts)
        chance, p_value, information_chance = shuffled_codes(
            c, labels, heads, head, k, information, p["shuffles"], g
        )
        q_logits, q_cont = (t.cpu() for t in model.predict_codes(x))
        _, _, cont = model.split_latent(z.cpu())
        out = {
            "code_accuracy": accuracy,
            "code_chance": chance,
            "code_p_value": p_value,
            "code_information": information,
            "code_information_chance": information_chance,
            "code_classes": float(m),
            "q_accuracy": float((q_logits.argmax(1) == c).float().mean()),
            "q_continuous_r2": _r2(q_cont, cont) if spec.continuous else 0.0,
            "code_n": float(n),
        }
        names = class_names(ctx.dataset, head, m)
        report = {
            "head": head,
            "class_names": names,
            **code_report(counts, matching),
            "heads": candidate_report(c, labels, heads, k),
            "scores": out,
        }
        table = {
            "head": head,
            "class_names": names,
            "n_per_code": n,
            "code_accuracy": accuracy,
            **per_class_table(counts, matching, names),
        }
        figures = {}
        if p["figure"]:
            order = sorted(range(k), key=lambda v: (matching[v], v))  # rows in class order
            figures = self.traversal_figures(ctx, order)
        return Evaluation(out, reports={"codes": report, "codes_per_class": table}, figures=figures)

    def candidate_heads(self, net) -> dict[str, int]:
        """The categorical heads the code may be scored against (name: classes), the class
        head first; only the one ``head`` names unless it is "auto"."""
        heads = {h.name: h.levels for h in net.heads_spec if h.levels > 0}
        heads = (
            {net.class_head: heads[net.class_head], **heads} if net.class_head in heads else heads
        )
        chosen = self.params["head"]
        if chosen != "auto":
            if chosen not in heads:
                raise ValueError(
                    f"codes: head {chosen!r} is not a categorical head of the domain network "
                    f"({', '.join(heads)})"
                )
            heads = {chosen: heads[chosen]}
        if not heads:
            raise ValueError("codes: the domain network has no categorical head")
        return heads

    @torch.no_grad()
    def traversal_figures(self, ctx: EvalContext, order: list[int]) -> dict[str, Figure]:
        """codes-c{j}: one noise vector; row = categorical value, column = continuous code j
        swept (without continuous codes, one figure ``codes``: a row per categorical value)."""
        model, p = ctx.model, self.params
        spec = model.code_spec()
        low, high = spec.continuous_range
        mid, half = (low + high) / 2, (high - low) / 2 * p["sweep_scale"]
        sweep = torch.linspace(mid - half, mid + half, p["sweep_steps"])
        g = ctx.rng(11)
        base = model.sample_latent(1, generator=g).cpu()
        noise, _, cont = model.split_latent(base)
        figures = {}
        for j in range(max(spec.continuous, 1)):
            rows = []
            for value in order:
                values = cont.repeat(len(sweep), 1)
                if spec.continuous:
                    values[:, j] = sweep
                z = model.sample_latent(len(sweep), generator=g, category=value, continuous=values)
                z[:, : spec.noise_dim] = noise.to(z.device)
                rows.append(model.generate(z).clamp(-1, 1).cpu())
            stem = f"codes-c{j + 1}" if spec.continuous else "codes"
            figures[stem] = traversal_figure(
                rows,
                [f"c{j + 1}={v:+.2g}" for v in sweep.tolist()]
                if spec.continuous
                else [f"sample {i + 1}" for i in range(len(sweep))],
                [f"category {v}" for v in order],
                f"InfoGAN codes, one noise vector: rows set the categorical code, columns sweep "
                f"continuous code c{j + 1}"
                if spec.continuous
                else "InfoGAN codes, one noise vector: rows set the categorical code",
            )
        return figures


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    resid = (pred - target).square().sum(0)
    total = (target - target.mean(0)).square().sum(0).clamp_min(1e-12)
    return float((1 - resid / total).mean())
