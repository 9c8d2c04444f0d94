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
``codes_per_class.json`` (the per-class table the board shows: see :func:`per_class_table`);
``codes-c{j}.png`` (code traversals).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.plots import traversal_figure
from ganbench.core.registry import register_explainer
from ganbench.core.scores import EXACT, NOISY, UNIT_COUNT, Score


def counts_matrix(codes: torch.Tensor, labels: torch.Tensor, k: int, m: int) -> torch.Tensor:
    """(k, m) table: how many images with code value i got class j."""
    flat = codes.long() * m + labels.long()
    return torch.bincount(flat.cpu(), minlength=k * m).reshape(k, m)


def matched_accuracy(counts: torch.Tensor) -> tuple[float, dict[int, int]]:
    """Share of images on the code->class matching that maximises agreement, each class
    taking at most ceil(k / m) code values (one-to-one when k <= m), and the matching."""
    k, m = counts.shape
    cap = max(1, math.ceil(k / m))
    # every class repeated cap times: column c stands for class c // cap
    wide = np.repeat(counts.numpy(), cap, axis=1)
    rows, cols = linear_sum_assignment(wide, maximize=True)
    total = int(counts.sum())
    matched = int(wide[rows, cols].sum())
    return matched / max(total, 1), {int(r): int(c) // cap for r, c in zip(rows, cols, strict=True)}


def code_information(counts: torch.Tensor) -> float:
    """I(code; class) / H(class) from a counts table: 1 when the code value determines the
    class, 0 when they are independent or the class never varies (H(class) = 0)."""
    p = counts.double() / max(int(counts.sum()), 1)
    pc, py = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    h_class = float(-(py[py > 0] * py[py > 0].log()).sum())
    if h_class <= 1e-12:
        return 0.0
    nz = p > 0
    mi = float((p[nz] * (p[nz] / (pc * py).expand_as(p)[nz]).log()).sum())
    return min(max(mi / h_class, 0.0), 1.0)


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


def per_class_table(counts: torch.Tensor, matching: dict[int, int], names: list[str]) -> dict:
    """The per-class table: for each code value its matched class, how many of its images the
    domain network gave that class (``correct``, ``accuracy`` = correct / n) and ``n``; for
    each class the code values matched to it, the share of their images it got
    (``accuracy``) and the share of all images labelled that class that came from them
    (``recall``)."""
    table = counts.tolist()
    codes = []
    for value, row in enumerate(table):
        j = matching[value]
        n = sum(row)
        codes.append(
            {
                "code": value,
                "matched_class": j,
                "matched_name": names[j],
                "accuracy": row[j] / max(n, 1),
                "correct": row[j],
                "n": n,
            }
        )
    classes = []
    for j, name in enumerate(names):
        values = [v for v in range(len(table)) if matching[v] == j]
        correct = sum(table[v][j] for v in values)
        drawn = sum(sum(table[v]) for v in values)
        labelled = sum(row[j] for row in table)
        classes.append(
            {
                "class": j,
                "name": name,
                "codes": values,
                "n": drawn,
                "correct": correct,
                "accuracy": correct / drawn if drawn else 0.0,
                "labelled": labelled,
                "recall": correct / labelled if labelled else 0.0,
            }
        )
    return {"codes": codes, "classes": classes}


def class_names(dataset, head: str, m: int) -> list[str]:
    """Readable names of a head's classes (shapes' levels; else the class indices)."""
    found = getattr(dataset, "level_names", {}).get(head.rstrip("2"))
    if found is not None and len(found) == m:
        return list(found)
    return [str(j) for j in range(m)]


def choose_head(
    codes: torch.Tensor, labels: dict[str, torch.Tensor], heads: dict[str, int], k: int
):
    """(head, counts, information) of the head the code informs most (first on ties)."""
    best = None
    for name, m in heads.items():
        counts = counts_matrix(codes, labels[name], k, m)
        info = code_information(counts)
        if best is None or info > best[2] + 1e-12:
            best = (name, counts, info)
    return best


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
        Score(
            "code_p_value",
            "none",
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
        Score("code_n", "none", "generated images per code value", primary=False, tolerance=EXACT),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        model, p = ctx.model, self.params
        spec = model.code_spec()
        k, n = spec.categories, p["n_per_category"]
        net = ctx.domain_network()
        if k < 2:
            raise ValueError("codes: the architecture has fewer than 2 categorical code values")
        heads = {h.name: h.levels for h in net.heads_spec if h.levels > 0}
        heads = (
            {net.class_head: heads[net.class_head], **heads} if net.class_head in heads else heads
        )
        if p["head"] != "auto":
            if p["head"] not in heads:
                raise ValueError(
                    f"codes: head {p['head']!r} is not a categorical head of the domain network "
                    f"({', '.join(heads)})"
                )
            heads = {p["head"]: heads[p["head"]]}
        if not heads:
            raise ValueError("codes: the domain network has no categorical head")
        g = ctx.rng(10)
        images, codes, latents = [], [], []
        with torch.no_grad():
            for value in range(k):
                z = model.sample_latent(n, generator=g, category=value)
                images.append(model.generate(z).clamp(-1, 1))
                codes.append(torch.full((n,), value))
                latents.append(z)
        x, c, z = torch.cat(images), torch.cat(codes), torch.cat(latents)
        read = net.predict(x)
        labels = {name: read[name].cpu().long() for name in heads}
        head, counts, information = choose_head(c, labels, heads, k)
        m = heads[head]
        accuracy, matching = matched_accuracy(counts)
        # chance: the same images, codes shuffled, scored against the chosen head; the p-value
        # repeats the choice of head on every shuffle (a test of the whole procedure)
        shuffled_acc, shuffled_info, beaten = [], [], 0
        for _ in range(p["shuffles"]):
            cs = c[torch.randperm(len(c), generator=g)]
            info_s = {h: code_information(counts_matrix(cs, labels[h], k, heads[h])) for h in heads}
            shuffled_acc.append(matched_accuracy(counts_matrix(cs, labels[head], k, m))[0])
            shuffled_info.append(info_s[head])
            beaten += max(info_s.values()) >= information - 1e-12
        q_logits, q_cont = (t.cpu() for t in model.predict_codes(x))
        _, _, cont = model.split_latent(z.cpu())
        n_shuffles = max(len(shuffled_acc), 1)
        out = {
            "code_accuracy": accuracy,
            "code_chance": float(sum(shuffled_acc) / n_shuffles),
            "code_p_value": (1 + beaten) / (1 + len(shuffled_acc)),
            "code_information": information,
            "code_information_chance": float(sum(shuffled_info) / n_shuffles),
            "code_classes": float(m),
            "q_accuracy": float((q_logits.argmax(1) == c).float().mean()),
            "q_continuous_r2": _r2(q_cont, cont) if spec.continuous else 0.0,
            "code_n": float(n),
        }
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        candidates = {}
        for name, levels in heads.items():
            counts_h = counts_matrix(c, labels[name], k, levels)
            acc_h, matching_h = matched_accuracy(counts_h)
            candidates[name] = {
                "classes": levels,
                "accuracy": acc_h,
                "information": code_information(counts_h),
                "matching": [matching_h[v] for v in range(k)],
                "counts": counts_h.tolist(),
            }
        names = class_names(ctx.dataset, head, m)
        report = {
            "head": head,
            "class_names": names,
            **code_report(counts, matching),
            "heads": candidates,
            "scores": out,
        }
        (ctx.artifact_dir / "codes.json").write_text(json.dumps(report, indent=1))
        table = {
            "head": head,
            "class_names": names,
            "n_per_code": n,
            "code_accuracy": accuracy,
            **per_class_table(counts, matching, names),
        }
        (ctx.artifact_dir / "codes_per_class.json").write_text(json.dumps(table, indent=1))
        if p["figure"]:
            order = sorted(range(k), key=lambda v: (matching[v], v))  # rows in class order
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
            traversal_figure(
                rows,
                [f"c{j + 1}={v:+.2g}" for v in sweep.tolist()]
                if spec.continuous
                else [f"sample {i + 1}" for i in range(len(sweep))],
                [f"category {v}" for v in order],
                f"InfoGAN codes, one noise vector: rows set the categorical code, columns sweep "
                f"continuous code c{j + 1}"
                if spec.continuous
                else "InfoGAN codes, one noise vector: rows set the categorical code",
                ctx.artifact_dir / name,
            )


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    resid = (pred - target).square().sum(0)
    total = (target - target.mean(0)).square().sum(0).clamp_min(1e-12)
    return float((1 - resid / total).mean())
