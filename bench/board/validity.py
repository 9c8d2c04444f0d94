"""Which leaderboard columns may rank, and rankings with their uncertainty.

A column of the board is a score that some evaluator declares with a direction. It enters a
ranking only where it passes a *validity gate* on that dataset:

* a quality score must separate the real-data reference (what a perfect generator would
  score) from every untrained control, in its declared direction and by more than
  :data:`SPREADS` times the seeds' combined spread (:func:`quality_gate`). A score on which an
  untrained network ties or beats real data rewards something other than sample quality;
* an explainer's score must beat its random control (:func:`control_gate`), and a score about
  what a *generator* learned (dissection, directions, intrinsic explanations) must also put
  trained networks above their own untrained controls (:func:`trained_gate`).

Rankings (:func:`rank`) compare each contender's *margin* over its own baseline (its untrained
control, or the explainer's random control), not its raw value, and are bootstrapped: every
per-seed mean is redrawn (seeds resampled with replacement where there are three or more,
else a normal draw whose spread is the larger of the seeds' standard deviation and a quarter
of the score's declared reproduction tolerance, the run-to-run noise measured for it; see
docs/reproduction.md), the win rates and ranks recomputed, and the 2.5-97.5% range of each
contender's rank reported. Contenders whose rank intervals overlap are tied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import kendalltau

from ganbench.core.scores import Score

# A gap counts only when it exceeds this many combined standard deviations of the seeds.
SPREADS = 2.0
BOOTSTRAP_DRAWS = 1000
# share of the pairs (architectures, or architectures x explainers) on which a score must beat
# its control for the column to rank
MAJORITY = 0.5


def sign_of(direction: str) -> int:
    return {"higher": 1, "lower": -1}.get(direction, 0)


def spread(values: Sequence[float]) -> float:
    """The seeds' sample standard deviation (0 for a single seed)."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else 0.0


@dataclass(frozen=True)
class Separation:
    """How far ``better`` lies beyond ``worse`` in the declared direction."""

    gap: float  # signed: positive when ``better`` is better
    spread: float  # combined seed spread of both sides
    ok: bool  # gap > 0 and gap > SPREADS * spread

    @property
    def spreads(self) -> float:
        """The gap in combined seed spreads (inf when the seeds did not spread at all)."""
        if self.spread > 0:
            return self.gap / self.spread
        return math.copysign(math.inf, self.gap) if self.gap else 0.0

    def words(self) -> str:
        s = self.spreads
        if math.isinf(s):
            return f"{'+' if s > 0 else '-'}∞ spreads (gap {self.gap:+.3g}, no seed spread)"
        return f"{s:+.1f} spreads (gap {self.gap:+.3g})"


def separation(better: Sequence[float], worse: Sequence[float], direction: str) -> Separation:
    gap = sign_of(direction) * (float(np.mean(better)) - float(np.mean(worse)))
    combined = math.hypot(spread(better), spread(worse))
    return Separation(gap, combined, gap > 0 and gap > SPREADS * combined)


@dataclass
class Gate:
    """Whether a column ranks on one dataset, and why (shown on the board)."""

    ranked: bool
    reason: str
    # quality: the real-data reference's separation from the worst untrained control
    separation: Separation | None = None
    passed: int = 0  # controls beaten
    of: int = 0  # controls compared


def quality_gate(
    real: Sequence[float], untrained: Mapping[str, Sequence[float]], direction: str
) -> Gate:
    """A quality score ranks where real data beats every untrained control beyond the seeds'
    spread."""
    if sign_of(direction) == 0:
        return Gate(False, "descriptive: no better direction")
    if not real:
        return Gate(False, "no real-data value to validate it against")
    if not untrained:
        return Gate(False, "no untrained control to validate it against")
    seps = {arch: separation(real, u, direction) for arch, u in untrained.items() if u}
    worst_arch = min(seps, key=lambda a: seps[a].spreads)
    worst = seps[worst_arch]
    passed = sum(s.ok for s in seps.values())
    if passed < len(seps):
        return Gate(
            False,
            f"real data does not beat untrained {worst_arch} beyond the seeds' spread "
            f"({worst.words()})",
            worst,
            passed,
            len(seps),
        )
    return Gate(
        True,
        f"real data beats every untrained control; closest: {worst_arch}, {worst.words()}",
        worst,
        passed,
        len(seps),
    )


def control_gate(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]], direction: str, what: str
) -> Gate:
    """A score ranks where it beats ``what`` (values, control values per contender) beyond
    the seeds' spread for at least half of the contenders."""
    if sign_of(direction) == 0:
        return Gate(False, "descriptive: no better direction")
    have = {k: separation(v, c, direction) for k, (v, c) in pairs.items() if v and c}
    if not have:
        return Gate(False, f"no values beside {what}")
    passed = sum(s.ok for s in have.values())
    words = f"beats {what} on {passed} of {len(have)}"
    if passed == 0 or passed < MAJORITY * len(have):
        return Gate(False, f"{words} (needs at least half)", None, passed, len(have))
    return Gate(True, words, None, passed, len(have))


def combine(*gates: Gate) -> Gate:
    """All of ``gates`` must pass; the first failure's reason is kept."""
    for g in gates:
        if not g.ranked:
            return g
    return Gate(
        True,
        "; ".join(g.reason for g in gates),
        gates[0].separation,
        sum(g.passed for g in gates),
        sum(g.of for g in gates),
    )


# -- rankings --------------------------------------------------------------------------------


@dataclass
class Entry:
    """One contender in one column: its per-seed values and those of its baseline (untrained
    control or random control) and, for quality, of the real-data reference."""

    values: Sequence[float]
    baseline: Sequence[float] = ()
    real: Sequence[float] = ()


@dataclass
class RankColumn:
    name: str
    score: Score
    entries: dict[str, Entry]


@dataclass
class Ranked:
    """A contender's mean win rate, its bootstrap interval, and its rank interval."""

    rate: float
    rate_low: float
    rate_high: float
    rank: int
    rank_low: int
    rank_high: int
    columns: int
    tied_with: list[str] = field(default_factory=list)

    def rank_words(self) -> str:
        if self.rank_low == self.rank_high:
            return str(self.rank_low)
        return f"{self.rank_low}–{self.rank_high}"


def margin(e_values: float, e_base: float | None, e_real: float | None, direction: str) -> float:
    """The contender's improvement over its baseline in the declared direction; with a
    real-data value, as the share of the baseline-to-real gap it closes (1 = as good as real,
    0 = no better than its baseline), so that columns of different scales compare."""
    s = sign_of(direction)
    if e_base is None:
        return s * e_values
    gain = s * (e_values - e_base)
    if e_real is None:
        return gain
    room = s * (e_real - e_base)
    return gain / room if room > 0 else gain


def _draw(values: Sequence[float], score: Score, rng: np.random.Generator) -> float:
    v = np.asarray(values, dtype=float)
    if len(v) >= 3:
        return float(rng.choice(v, size=len(v)).mean())
    m = float(v.mean())
    floor = score.tolerance.bound(m, m) / 4 if score.tolerance is not None else 0.0
    sigma = max(spread(v), floor)
    return m + float(rng.normal(0.0, sigma / math.sqrt(len(v)))) if sigma > 0 else m


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _win_rates(margins: list[dict[str, float]], names: list[str]) -> dict[str, float]:
    rates: dict[str, list[float]] = {n: [] for n in names}
    for col in margins:
        have = [n for n in names if n in col]
        if len(have) < 2:
            continue
        for n in have:
            others = [col[o] for o in have if o != n]
            beats = sum(col[n] > o for o in others) + 0.5 * sum(col[n] == o for o in others)
            rates[n].append(beats / len(others))
    return {n: float(np.mean(r)) for n, r in rates.items() if r}


def _ranks(rates: Mapping[str, float]) -> dict[str, int]:
    return {n: 1 + sum(o > r for o in rates.values()) for n, r in rates.items()}


def _margins(
    columns: Sequence[RankColumn], pick: Callable[[Sequence[float], Score], float | None]
) -> list[dict[str, float]]:
    out = []
    for col in columns:
        d = col.score.direction
        row = {}
        for name, e in col.entries.items():
            v = pick(e.values, col.score)
            if v is None:
                continue
            base = pick(e.baseline, col.score) if e.baseline else None
            real = pick(e.real, col.score) if e.real else None
            row[name] = margin(v, base, real, d)
        out.append(row)
    return out


def rank(
    columns: Sequence[RankColumn], seed: int = 0, draws: int = BOOTSTRAP_DRAWS
) -> dict[str, Ranked]:
    """Mean win rates of the contenders over ``columns`` (each compares margins over the
    contenders' baselines), with bootstrap intervals of the win rate and of the rank."""
    names = sorted({n for c in columns for n in c.entries})
    point = _win_rates(_margins(columns, lambda v, s: _mean(v)), names)
    if not point:
        return {}
    rng = np.random.default_rng(seed)
    rates_b: dict[str, list[float]] = {n: [] for n in point}
    ranks_b: dict[str, list[int]] = {n: [] for n in point}
    for _ in range(draws):
        rates = _win_rates(
            _margins(columns, lambda v, s: _draw(v, s, rng) if len(v) else None), names
        )
        rates = {n: rates.get(n, point[n]) for n in point}
        for n, r in _ranks(rates).items():
            ranks_b[n].append(r)
            rates_b[n].append(rates[n])
    ranks = _ranks(point)
    n_cols = {n: sum(n in c.entries and len(c.entries) >= 2 for c in columns) for n in point}
    out = {}
    for n in point:
        lo, hi = np.percentile(ranks_b[n], [2.5, 97.5])
        rlo, rhi = np.percentile(rates_b[n], [2.5, 97.5])
        out[n] = Ranked(
            point[n],
            min(float(rlo), point[n]),
            max(float(rhi), point[n]),
            ranks[n],
            min(int(math.floor(lo)), ranks[n]),
            max(int(math.ceil(hi)), ranks[n]),
            n_cols[n],
        )
    for n, r in out.items():
        r.tied_with = sorted(
            o
            for o, q in out.items()
            if o != n and q.rank_low <= r.rank_high and r.rank_low <= q.rank_high
        )
    return out


# -- the metric-validity table ----------------------------------------------------------------


def monotonicity(series: Mapping[str, Sequence[tuple[int, float]]], direction: str):
    """Kendall's τ between training steps and the score (signed so that +1 means the score
    improves at every checkpoint) per architecture: (mean τ, architectures whose τ is 1, of)."""
    s = sign_of(direction)
    taus = []
    for points in series.values():
        if len(points) < 3 or s == 0:
            continue
        steps, vals = zip(*sorted(points), strict=True)
        tau = kendalltau(steps, [s * v for v in vals]).statistic
        taus.append(0.0 if math.isnan(tau) else float(tau))
    if not taus:
        return None
    return float(np.mean(taus)), sum(t >= 1.0 - 1e-12 for t in taus), len(taus)


def rank_agreement(
    orderings: Mapping[str, Mapping[str, float]], directions: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Kendall's τ between every two columns' orderings of the contenders they share (each
    signed by its direction, so that τ = 1 means they rank the contenders alike)."""
    out: dict[str, dict[str, float]] = {}
    for a, va in orderings.items():
        out[a] = {}
        for b, vb in orderings.items():
            if a == b:
                continue
            shared = sorted(set(va) & set(vb))
            if len(shared) < 3:
                continue
            sa, sb = sign_of(directions[a]), sign_of(directions[b])
            tau = kendalltau([sa * va[k] for k in shared], [sb * vb[k] for k in shared]).statistic
            if not math.isnan(tau):
                out[a][b] = float(tau)
    return out
