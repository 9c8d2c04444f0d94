"""The checks :func:`ganbench.run.config_load.parse_config` applies to a config's keys and
tables, one function per key or table. Each raises :class:`ConfigError` naming the file, the
key and what is allowed, and returns the value as the matrix keeps it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ganbench.core.errors import ConfigError, PluginLoadError
from ganbench.core.params import resolve_params
from ganbench.core.registry import ARCHITECTURES, Registry, UnknownNameError, bad_name
from ganbench.run.config import (
    ARCH_BUDGET_KEYS,
    DATASET_BUDGET_KEYS,
    RAY_KEYS,
    MatrixConfig,
    RayOptions,
)


def drop_broken(data: dict[str, Any], plugin_errors: list[str] | None) -> dict[str, str]:
    """Take architectures whose plugin failed to import out of ``data``; returns name -> reason.

    A broken plugin must not stop the matrix: its architectures are reported as failed and
    every other cell runs. Without plugin errors an unregistered name stays a config error.
    """
    broken: dict[str, str] = {}
    tables = data.get("architecture", {})
    listed = data.get("architectures", [])
    if not isinstance(listed, list) or not isinstance(tables, dict):
        return broken
    for name in listed:
        if not isinstance(name, str):
            continue
        table = tables.get(name)
        base = table.get("variant_of", name) if isinstance(table, dict) else name
        if not isinstance(base, str):
            continue
        try:
            ARCHITECTURES.get(base)
        except PluginLoadError as exc:
            broken[name] = str(exc)
        except UnknownNameError:
            if plugin_errors:
                broken[name] = f"architecture {base!r} is not registered: " + "; ".join(
                    plugin_errors
                )
    if broken:
        data["architectures"] = [a for a in listed if a not in broken]
        data["architecture"] = {k: v for k, v in tables.items() if k not in broken}
        train = data.get("train")
        if isinstance(train, dict):
            data["train"] = {k: v for k, v in train.items() if k not in broken}
        if isinstance(data.get("exclude"), list):
            data["exclude"] = [
                e
                for e in data["exclude"]
                if not isinstance(e, dict) or e.get("architecture") not in broken
            ]
    return broken


def expect_type(source: str, key: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """``value`` is of ``kind`` (a bool is not an int unless ``kind`` says so)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        what = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{source}: key {key!r} must be a {what}, got {value!r}")


def name_list(
    source: str, key: str, value: Any, registry: Registry | None, also: Iterable[str] = ()
) -> list[str]:
    """A list of distinct names, each registered in ``registry`` or one of ``also``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: key {key!r} must be a list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: key {key!r} lists a name twice: {value!r}")
    if registry is not None:
        for name in value:
            if name not in registry and name not in also:
                raise ConfigError(f"{source}: {registry.unknown_message(name, f'in key {key!r}')}")
    return list(value)


def ray_options(source: str, table: dict[str, Any]) -> RayOptions:
    """``[ray] num_cpus_per_trial = 2``: validated strictly, every mistake naming its key."""
    where = f"{source}: [ray]"
    for key, value in table.items():
        if key not in RAY_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(RAY_KEYS)})")
        kinds = RAY_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            what = "an integer" if kinds == (int,) else "a number"
            raise ConfigError(f"{where}: key {key!r} must be {what}, got {value!r}")
    opts = RayOptions(**table)
    if opts.num_cpus is not None and opts.num_cpus < 1:
        raise ConfigError(f"{where}: key 'num_cpus' must be at least 1, got {opts.num_cpus}")
    if opts.num_cpus_per_trial <= 0:
        raise ConfigError(
            f"{where}: key 'num_cpus_per_trial' must be > 0, got {opts.num_cpus_per_trial}"
        )
    if not 0 < opts.gpus_per_trial <= 1:
        raise ConfigError(
            f"{where}: key 'gpus_per_trial' must be in (0, 1] (a trial uses one GPU; "
            f"0.25 shares a GPU between four), got {opts.gpus_per_trial}"
        )
    if opts.max_retries < 0:
        raise ConfigError(f"{where}: key 'max_retries' must be >= 0, got {opts.max_retries}")
    return opts


def variants(source: str, tables: dict) -> dict[str, str]:
    """``[architecture.ifgan-plain] variant_of = "ifgan"``: a named re-parametrisation, listed
    and reported as an architecture of its own (an ablation, say), built by the registered one."""
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or "variant_of" not in table:
            continue
        base = table["variant_of"]
        where = f"{source}: [architecture.{name}]"
        if bad_name(name):
            raise ConfigError(f"{where}: a variant's {bad_name(name)}")
        if not isinstance(base, str) or base not in ARCHITECTURES:
            raise ConfigError(
                f"{where}: {ARCHITECTURES.unknown_message(str(base), 'in key variant_of')}"
            )
        if name in ARCHITECTURES:
            raise ConfigError(
                f"{where}: a variant needs a name of its own; {name!r} is a registered architecture"
            )
        out[name] = base
    return out


def train_overrides(source: str, tables: dict, cfg: MatrixConfig) -> dict[str, dict[str, Any]]:
    """``[train.infogan] steps = 15000``: an architecture's own steps, batch size or seeds;
    ``[train.infogan.shapes]``: its steps or batch size on one dataset."""
    out = {}
    for name, table in tables.items():
        where = f"{source}: [train.{name}]"
        if name not in cfg.architectures:
            raise ConfigError(
                f"{where} sets the budget of {name!r}, which neither the architectures list "
                f"(listed: {', '.join(cfg.architectures) or 'none'}) nor the datasets list "
                f"(listed: {', '.join(cfg.datasets)}) names"
            )
        out[name] = budget_table(where, table, cfg, per_dataset=True)
    return out


def budget_table(where: str, table: dict, cfg: MatrixConfig, per_dataset: bool) -> dict:
    """One ``[train.NAME]`` table checked: steps, batch size, and (architectures only) seeds
    and per-dataset sub-tables ``[train.ARCHITECTURE.DATASET]`` of steps and batch size."""
    allowed = ARCH_BUDGET_KEYS if per_dataset else DATASET_BUDGET_KEYS
    out: dict[str, Any] = {}
    for key, value in table.items():
        if per_dataset and isinstance(value, dict):
            if key not in cfg.datasets:
                raise ConfigError(
                    f"{where[:-1]}.{key}] names {key!r}, which the datasets list does not "
                    f"name (listed: {', '.join(cfg.datasets)})"
                )
            out[key] = budget_table(f"{where[:-1]}.{key}]", value, cfg, per_dataset=False)
            continue
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        expect_type(where, key, value, allowed[key])
        out[key] = value
    if table.get("steps", 0) < 0 or table.get("batch_size", 1) < 1:
        raise ConfigError(f"{where}: steps must be >= 0 and batch_size >= 1, got {table!r}")
    seeds = table.get("seeds")
    if seeds is not None and (not seeds or any(s not in cfg.seeds for s in seeds)):
        raise ConfigError(
            f"{where}: 'seeds' must be a non-empty subset of the matrix seeds {cfg.seeds}, "
            f"got {seeds!r}"
        )
    return out


def exclude_entries(source: str, entries: list, cfg: MatrixConfig) -> list[dict[str, str]]:
    """``exclude = [{architecture = "sagan", dataset = "shapes"}]``: cells left out of the cross."""
    listed = {"architecture": cfg.architectures, "dataset": cfg.datasets}
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry or set(entry) - set(listed):
            raise ConfigError(
                f"{source}: each 'exclude' entry must be a table with keys architecture and/or "
                f'dataset, e.g. {{architecture = "sagan", dataset = "shapes"}}; got {entry!r}'
            )
        for key, value in entry.items():
            if value not in listed[key]:
                raise ConfigError(
                    f"{source}: 'exclude' names {key} {value!r}, which the {key}s list does not "
                    f"name (listed: {', '.join(listed[key]) or 'none'})"
                )
        out.append(dict(entry))
    return out


def param_tables(
    source: str, data: dict, table: str, listed: list[str], lookup: Callable[[str], type]
) -> dict[str, dict[str, Any]]:
    """Check ``[table.NAME]`` parameter tables against each class's declared defaults."""
    given = data.get(table, {})
    out = {}
    for name, params in given.items():
        if name not in listed:
            raise ConfigError(
                f"{source}: [{table}.{name}] configures {name!r}, which the {table}s list does not name "
                f"(listed: {', '.join(listed) or 'none'})"
            )
        if not isinstance(params, dict):
            raise ConfigError(
                f"{source}: [{table}.{name}] must be a table of parameters, got {params!r}"
            )
    for name in listed:
        cls = lookup(name)
        out[name] = resolve_params(cls.defaults, given.get(name), f"{source}: [{table}.{name}]")
    return out


def checkpoint_steps(source: str, values: list) -> list[int]:
    """``checkpoints``: distinct positive step counts, sorted."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(
                f"{source}: key 'checkpoints' lists step counts (integers >= 1), got {v!r}"
            )
    return sorted(set(values))
