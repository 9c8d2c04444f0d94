"""Score declarations: every score is declared once, with direction, unit, meaning and the
tolerance within which two runs of one trial key count as the same number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "none"]
ARROWS = {"higher": "↑", "lower": "↓", "none": ""}


@dataclass(frozen=True)
class Tolerance:
    """Two values agree when ``|a - b| <= abs + rel * max(|a|, |b|)``."""

    abs: float = 0.0
    rel: float = 0.0

    def bound(self, a: float, b: float) -> float:
        return self.abs + self.rel * max(abs(a), abs(b))

    def agrees(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.bound(a, b)

    def excess(self, a: float, b: float) -> float:
        """``|a - b|`` in units of the allowed difference: <= 1 agrees (inf: none allowed)."""
        bound = self.bound(a, b)
        diff = abs(a - b)
        if bound == 0:
            return 0.0 if diff == 0 else float("inf")
        return diff / bound

    def words(self) -> str:
        parts = ([f"±{self.abs:g}"] if self.abs else []) + (
            [f"±{self.rel * 100:g}%"] if self.rel else []
        )
        return " + ".join(parts) if parts else "exact"


# How far two honest runs of one key may differ. Training is not bit-reproducible across
# thread counts, CPUs or GPUs (float sums run in another order, and a GAN's training
# amplifies that like a change of seed), so two runs of a trained model's key agree only to
# run-to-run noise. The values are sized on measured differences (docs/reproduction.md:
# 1 against 2 threads, a rerun of the untrained controls on another CPU, and seed pairs at the
# smoke sizes), each at least 1.25 times the largest difference seen:
# - DEFAULT_TOLERANCE: every score that declares nothing else;
# - NOISY: scores that move with what training happened to learn (FID/KID, precision/recall,
#   code accuracy, the directions' accuracies, dissection's shares) or with few images;
# - VERY_NOISY: scores whose run-to-run spread is near their range at the smoke sizes (the
#   captum explainers on 8 images, dissection's causal effects, a learned attention gate):
#   a reproduction says little about them until they are run on more images;
# - UNIT_COUNT: counts of units or concepts (±3 units, ±80%);
# - EXACT: counts and chance levels fixed by the parameters. Costs declare None: never compared.
DEFAULT_TOLERANCE = Tolerance(abs=0.05, rel=0.35)
NOISY = Tolerance(abs=0.1, rel=0.6)
VERY_NOISY = Tolerance(abs=0.25, rel=0.8)
UNIT_COUNT = Tolerance(abs=3.0, rel=0.8)
EXACT = Tolerance()

# The tables the sample-quality scores are split into on the leaderboard, in this order
# (one table of 24 columns does not fit a screen); a score declares its ``group``.
TESTS = "two-sample tests"
DISTANCES = "distances in feature space"
FIDELITY = "fidelity, diversity and smoothness"
MEMORISATION = "memorisation"
QUALITY_GROUPS = {
    TESTS: "can a classifier tell generated images from real ones? At accuracy 0.5 it cannot",
    DISTANCES: "how far the generated distribution lies from the real one in a feature space",
    FIDELITY: "precision: how many samples look real; recall: how much of the real data the "
    "samples cover; path length: how smoothly images change along the latent space",
    MEMORISATION: "whether samples copy training images",
}
OTHER = "other quality scores"


@dataclass(frozen=True)
class Score:
    """One named number an evaluator produces.

    ``direction`` says which way is better ("none" for descriptive numbers such as a
    p-value or a sample count); ``primary`` scores are the leaderboard's table columns,
    the others go to results.csv only. ``tolerance``: how far two runs of one trial key
    may differ and still count as reproducing each other (None: never compared, as for
    costs such as seconds and memory).
    """

    name: str
    direction: Direction
    meaning: str
    unit: str = ""
    primary: bool = True
    ideal: float | None = None
    # the name of the score (of the same evaluator) that is this one's chance level, e.g. the
    # same explainer fed random attributions; the leaderboard shows it beside this score
    control: str | None = None
    tolerance: Tolerance | None = DEFAULT_TOLERANCE
    # a cost (seconds, memory): shown in the cost tables, never in a ranking
    cost: bool = False
    # the table a quality score is shown in (QUALITY_GROUPS); "" for explainers' scores,
    # which are shown one table per explainer
    group: str = ""
    # a count (units, concepts, dimensions): printed as an integer
    integer: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ARROWS:
            raise ValueError(f"score {self.name!r}: direction must be higher, lower or none")

    @property
    def arrow(self) -> str:
        return ARROWS[self.direction]

    @property
    def is_p_value(self) -> bool:
        """A p-value: combined over seeds (Fisher's method), never averaged."""
        return self.name.endswith("p_value")

    @property
    def compared(self) -> bool:
        return self.tolerance is not None


# --- declarations that recur across evaluators -------------------------------------------
def p_value_score(name: str, meaning: str, *, primary: bool = True) -> Score:
    """A test's p-value: descriptive (direction "none"), at the default tolerance; its name
    must end in ``p_value``, which is how the board knows to combine it over seeds."""
    if not name.endswith("p_value"):
        raise ValueError(f"a p-value's name must end in 'p_value', got {name!r}")
    return Score(name, "none", meaning, primary=primary)


def interval_scores(prefix: str, of: str = "") -> tuple[Score, Score]:
    """The two ends, ``{prefix}_ci_low`` and ``{prefix}_ci_high``, of a 95% Clopper-Pearson
    interval (``of``: what it is the interval of, e.g. "the held-out accuracy"), in
    results.csv only."""
    where = f" of {of}" if of else ""
    return (
        Score(
            f"{prefix}_ci_low",
            "none",
            f"lower end of the 95% Clopper-Pearson interval{where}",
            primary=False,
        ),
        Score(
            f"{prefix}_ci_high",
            "none",
            f"upper end of the 95% Clopper-Pearson interval{where}",
            primary=False,
        ),
    )


def count_score(name: str, meaning: str = "images per side used") -> Score:
    """How many samples (or neighbours, or values) a score was computed from: fixed by the
    parameters and the data, so compared exactly; in results.csv only."""
    return Score(name, "none", meaning, primary=False, tolerance=EXACT)
