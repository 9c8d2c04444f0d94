"""How the leaderboard prints numbers: each as what it is.

- a score over seeds: mean ± sample std, with enough digits to show a small value as
  small (``2.1e-04``, never ``0.000`` for a non-zero number nor ``-0.000``);
- a p-value: never averaged. Per-seed p-values of one test are combined by Fisher's method
  (``-2 Σ ln p`` against χ² with 2k degrees of freedom), and only a p-value is ever printed as
  ``< 0.001``;
- a count: an integer (``41``, not ``41.000``);
- a cost: in the unit its header names (``ms`` for sub-second times), with its spread.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ganbench.core.scores import Score

P_FLOOR = 0.001


def fisher(p_values: list[float]) -> float:
    """Fisher's combined p-value of independent tests of one null (here: one per seed)."""
    ps = [min(max(float(p), 1e-300), 1.0) for p in p_values]
    if len(ps) == 1:
        return ps[0]
    return float(stats.combine_pvalues(ps, method="fisher").pvalue)


def p_text(p: float) -> str:
    return "< 0.001" if p < P_FLOOR else f"{p:.3f}"


def _decimals(x: float) -> int | None:
    """Decimals that show ``x`` with about three significant digits; None: use 3 significant
    digits in scientific notation (a small non-zero number)."""
    a = abs(x)
    if a >= 100:
        return 1
    if a >= 0.01 or a == 0:
        return 3
    return None


def number(x: float, decimals: int | None = None) -> str:
    if not math.isfinite(x):
        return str(x)
    d = _decimals(x) if decimals is None else decimals
    text = f"{x:.2e}" if d is None else f"{x:.{d}f}"
    if text.startswith("-") and float(text) == 0:  # "-0.000" hides that the value is ~0
        text = text[1:]
    return text


def values_text(values: list[float], score: Score | None = None) -> tuple[str, float]:
    """A cell's text for one score's per-seed values, and the number it sorts by."""
    if not values:
        return "–", float("nan")
    if score is not None and score.is_p_value:
        p = fisher(values)
        return p_text(p), p
    mean = float(np.mean(values))
    if score is not None and score.integer and all(float(v).is_integer() for v in values):
        if len(values) == 1 or len(set(values)) == 1:
            return f"{int(values[0])}", mean
        return f"{mean:.1f} ± {float(np.std(values, ddof=1)):.1f}", mean
    if len(values) == 1:
        return number(mean), mean
    std = float(np.std(values, ddof=1))
    d = _decimals(max(abs(mean), std))
    if d is None:  # mean and spread both below 0.01: "0.000 ± 0.000" would hide both
        return f"{mean:.2e} ± {std:.1e}", mean
    return f"{number(mean, d)} ± {number(std, d)}", mean


def values_title(values: list[float], seeds: list, score: Score | None = None) -> str:
    per_seed = "; ".join(f"seed {s}: {v:.4g}" for s, v in zip(seeds, values, strict=True))
    if score is not None and score.is_p_value and len(values) > 1:
        return f"{per_seed}; combined over {len(values)} seeds by Fisher's method"
    return per_seed


# the unit a cost is printed in, by the unit it is declared in and what it is per
COST_UNITS = {"s": ("ms", 1000.0)}


def cost_unit(unit: str, per: str = "") -> str:
    """The header unit of a cost declared in ``unit``: ``ms/step`` for seconds per step."""
    shown = COST_UNITS.get(unit, (unit, 1.0))[0]
    return f"{shown}/{per}" if per else shown


def cost_text(values: list[float], unit: str, convert: bool = True) -> tuple[str, float | None]:
    """A cost over seeds in its header's unit (``cost_unit``): mean, and ± std over seeds."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return "–", None
    scale = COST_UNITS.get(unit, (unit, 1.0))[1] if convert else 1.0
    mean = float(np.mean(vals))
    shown = mean * scale

    def fmt(x: float) -> str:
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"
        return f"{x:.3g}"

    text = fmt(shown)
    if len(vals) > 1:
        text += f" ± {fmt(float(np.std(vals, ddof=1)) * scale)}"
    return text, mean
