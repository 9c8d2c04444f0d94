"""Matching a categorical code's values to a domain network's classes (``codes``).

The counts table (code value x class), its Hungarian matching with a class taking at most
ceil(k / m) code values, the share of the class's entropy the code value removes, the head
the code informs most, the shuffled-code chance level and the reports written from them.
:mod:`ganbench.explainers.codes` describes the protocol in full.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


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


def shuffled_codes(
    codes: torch.Tensor,
    labels: dict[str, torch.Tensor],
    heads: dict[str, int],
    head: str,
    k: int,
    information: float,
    shuffles: int,
    generator: torch.Generator,
) -> tuple[float, float, float]:
    """Chance: the same images with their k code values shuffled, ``shuffles`` times. Returns
    the mean matched accuracy and the mean information on ``head``, and the p-value of
    ``information``, the head chosen again on each shuffle (a test of the whole procedure)."""
    m = heads[head]
    accuracies, informations, beaten = [], [], 0
    for _ in range(shuffles):
        cs = codes[torch.randperm(len(codes), generator=generator)]
        info_s = {h: code_information(counts_matrix(cs, labels[h], k, heads[h])) for h in heads}
        accuracies.append(matched_accuracy(counts_matrix(cs, labels[head], k, m))[0])
        informations.append(info_s[head])
        beaten += max(info_s.values()) >= information - 1e-12
    n_shuffles = max(len(accuracies), 1)
    return (
        float(sum(accuracies) / n_shuffles),
        (1 + beaten) / (1 + len(accuracies)),
        float(sum(informations) / n_shuffles),
    )


def candidate_report(
    codes: torch.Tensor, labels: dict[str, torch.Tensor], heads: dict[str, int], k: int
) -> dict[str, dict]:
    """For every candidate head: its classes, the code's matched accuracy and information
    on it, the matching and the counts table."""
    candidates = {}
    for name, levels in heads.items():
        counts = counts_matrix(codes, labels[name], k, levels)
        accuracy, matching = matched_accuracy(counts)
        candidates[name] = {
            "classes": levels,
            "accuracy": accuracy,
            "information": code_information(counts),
            "matching": [matching[v] for v in range(k)],
            "counts": counts.tolist(),
        }
    return candidates
