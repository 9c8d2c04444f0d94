"""Declared parameters with defaults, checked against what a config gives."""

from __future__ import annotations

from collections.abc import Mapping
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
