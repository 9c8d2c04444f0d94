"""Declared parameters with defaults, checked against what a config gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ganbench.core.errors import ConfigError


def _type_name(value: Any) -> str:
    return type(value).__name__


def resolve_params(
    defaults: Mapping[str, Any], given: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """Merge ``given`` over ``defaults``; unknown keys and wrong types raise :class:`ConfigError`.

    ``where`` names the place in the config, e.g. ``"smoke.toml: [architecture.dcgan]"``.
    """
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            allowed = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        default = defaults[key]
        ok = (
            default is None
            or isinstance(value, type(default))
            or (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            )
        )
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(
                f"{where}: key {key!r} must be {_type_name(default)} (like the default {default!r}), got {value!r}"
            )
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        out[key] = value
    return out


@dataclass(frozen=True)
class Range:
    """The values one parameter may take, declared beside its default (``Evaluator.ranges``)
    and checked when a matrix is read, before any trial runs: bounds (closed unless
    ``low_open`` / ``high_open``), or a set of ``choices``; None is allowed only with
    ``allow_none``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    allow_none: bool = False

    def words(self) -> str:
        """The allowed values in words: ``>= 1``, ``in (0, 1)``, ``one of 'a', 'b'``."""
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "anything"

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.allow_none
        if self.choices:
            return value in self.choices
        if value != value:  # NaN (TOML allows nan) lies within no bound
            return self.low is None and self.high is None
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )


def check_ranges(ranges: Mapping[str, Range], params: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first parameter outside its declared range."""
    for key, allowed in ranges.items():
        if key not in params:
            raise ValueError(f"declares a range for {key!r}, which is not one of its parameters")
        if not allowed.allows(params[key]):
            raise ValueError(f"{key} must be {allowed.words()}, got {params[key]!r}")
