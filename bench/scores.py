"""Score declarations: every score is declared once, with direction, unit and meaning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "none"]
ARROWS = {"higher": "↑", "lower": "↓", "none": ""}


@dataclass(frozen=True)
class Score:
    """One named number an evaluator produces.

    ``direction`` says which way is better ("none" for descriptive numbers such as a
    p-value or a sample count); ``primary`` scores are the leaderboard's table columns,
    the others go to results.csv only.
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

    def __post_init__(self) -> None:
        if self.direction not in ARROWS:
            raise ValueError(f"score {self.name!r}: direction must be higher, lower or none")

    @property
    def arrow(self) -> str:
        return ARROWS[self.direction]
