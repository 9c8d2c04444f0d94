"""Loading a matrix config: a shipped name or a TOML path read, parsed and validated into a
:class:`MatrixConfig`, errors naming the file, the key and what is allowed; and the command
line's narrowing of a loaded matrix (``--architecture``, ``--seeds``, ``--only``).

What the keys are and their defaults: :mod:`ganbench.run.config`; the check of each key or
table: :mod:`ganbench.run.config_checks`.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ganbench.core.errors import ConfigError
from ganbench.core.params import resolve_params
from ganbench.core.registry import (
    ARCHITECTURES,
    DATASETS,
    EXPLAINERS,
    METRICS,
    bad_name,
    evaluator_registry,
    get_dataset,
)
from ganbench.run.config import (
    COMPILE_MODES,
    DEVICES,
    EXECUTORS,
    PRECISIONS,
    REFERENCES,
    TOP_LEVEL,
    TRAIN_DEFAULTS,
    MatrixConfig,
)
from ganbench.run.config_checks import (
    budget_table,
    checkpoint_steps,
    drop_broken,
    exclude_entries,
    expect_type,
    name_list,
    param_tables,
    ray_options,
    train_overrides,
    variants,
)


def shipped_configs() -> list[str]:
    """Names of the configs shipped inside the package (smoke, standard, ...)."""
    root = resources.files("ganbench.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def resolve_config_path(name_or_path: str) -> tuple[str, str]:
    """(text, source) for a file path or a shipped config name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {name_or_path} does not exist")
        return path.read_text(encoding="utf-8"), str(path)
    if name_or_path in shipped_configs():
        res = resources.files("ganbench.configs") / f"{name_or_path}.toml"
        return res.read_text(encoding="utf-8"), f"{name_or_path}.toml"
    raise ConfigError(
        f"no config {name_or_path!r}: not a TOML file and not a shipped config "
        f"(shipped: {', '.join(shipped_configs())})"
    )


def load_config(name_or_path: str, plugin_errors: list[str] | None = None) -> MatrixConfig:
    """Load and validate a config. ``plugin_errors``: why ``--plugin`` files failed to import;
    then architectures that are not registered are left out as broken, not a config error."""
    text, source = resolve_config_path(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None
    return parse_config(data, source, plugin_errors)


def parse_config(
    data: dict[str, Any], source: str, plugin_errors: list[str] | None = None
) -> MatrixConfig:
    """Validate a parsed TOML document; every mistake raises :class:`ConfigError` with file and key.

    The keys are checked in the order of the file's sections: the top-level keys, how the
    matrix runs, its members, ``exclude`` and ``checkpoints``, ``[train]``, then the
    parameter tables; the first mistake found is the one reported."""
    data = dict(data)
    broken = drop_broken(data, plugin_errors)
    for key, value in data.items():
        if key not in TOP_LEVEL:
            raise ConfigError(f"{source}: unknown key {key!r} (allowed: {', '.join(TOP_LEVEL)})")
        expect_type(source, key, value, TOP_LEVEL[key])

    name = data.get("name", Path(source).stem)
    if bad_name(name):
        raise ConfigError(f"{source}: key 'name': {bad_name(name)}")
    cfg = MatrixConfig(name=name, source=source, description=data.get("description", ""))
    cfg.broken = broken
    cfg.quick_look = data.get("quick_look", False)
    _read_execution(cfg, data, source)
    _read_members(cfg, data, source)
    cfg.exclude = exclude_entries(source, data.get("exclude", []), cfg)
    cfg.checkpoints = checkpoint_steps(source, data.get("checkpoints", []))
    _read_train(cfg, data, source)
    _read_parameters(cfg, data, source)
    return cfg


def _read_execution(cfg: MatrixConfig, data: dict[str, Any], source: str) -> None:
    """How the matrix runs: ``seeds``, ``device``, ``executor``, ``workers``,
    ``trial_timeout`` and ``[ray]``."""
    seeds = data.get("seeds", [0])
    if not seeds or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds
    ):
        raise ConfigError(
            f"{source}: key 'seeds' must be a non-empty list of non-negative integers, got {seeds!r}"
        )
    cfg.seeds = list(seeds)

    cfg.device = data.get("device", "auto")
    if cfg.device not in DEVICES:
        raise ConfigError(
            f"{source}: key 'device' must be one of {', '.join(DEVICES)}, got {cfg.device!r}"
        )
    cfg.executor = data.get("executor", "local")
    if cfg.executor not in EXECUTORS:
        raise ConfigError(
            f"{source}: key 'executor' must be one of {', '.join(EXECUTORS)}, got {cfg.executor!r}"
        )
    cfg.workers = data.get("workers", 1)
    if cfg.workers < 1:
        raise ConfigError(f"{source}: key 'workers' must be at least 1, got {cfg.workers}")
    cfg.trial_timeout = data.get("trial_timeout", 0)
    if cfg.trial_timeout < 0:
        raise ConfigError(
            f"{source}: key 'trial_timeout' must be seconds >= 0 (0: no limit), "
            f"got {cfg.trial_timeout}"
        )
    cfg.ray = ray_options(source, data.get("ray", {}))


def _read_members(cfg: MatrixConfig, data: dict[str, Any], source: str) -> None:
    """What the matrix crosses: variants, architectures, datasets, metrics, explainers and
    references, each name registered (or a variant, or a known reference)."""
    cfg.variants = variants(source, data.get("architecture", {}))
    listed = data.get("architectures", [])
    cfg.architectures = name_list(source, "architectures", listed, ARCHITECTURES, also=cfg.variants)
    cfg.datasets = name_list(source, "datasets", data.get("datasets", []), DATASETS)
    cfg.metrics = name_list(source, "metrics", data.get("metrics", []), METRICS)
    cfg.explainers = name_list(source, "explainers", data.get("explainers", []), EXPLAINERS)
    cfg.references = name_list(source, "references", data.get("references", []), None)
    for ref in cfg.references:
        if ref not in REFERENCES:
            raise ConfigError(
                f"{source}: key 'references' allows {', '.join(REFERENCES)}, got {ref!r}"
            )
    if not cfg.architectures and "real" not in cfg.references and not cfg.broken:
        raise ConfigError(f"{source}: key 'architectures' must name at least one architecture")
    if not cfg.datasets:
        raise ConfigError(f"{source}: key 'datasets' must name at least one dataset")


def _read_train(cfg: MatrixConfig, data: dict[str, Any], source: str) -> None:
    """``[train]`` over :data:`TRAIN_DEFAULTS`, and its per-dataset and per-architecture
    budget tables ``[train.NAME]``."""
    train = dict(data.get("train", {}))
    overrides = {k: train.pop(k) for k in list(train) if isinstance(train[k], dict)}
    cfg.train = resolve_params(TRAIN_DEFAULTS, train, f"{source}: [train]")
    both = sorted(set(overrides) & set(cfg.datasets) & set(cfg.architectures))
    if both:
        raise ConfigError(
            f"{source}: [train.{both[0]}] is ambiguous: {both[0]!r} names both a dataset and "
            "an architecture; rename the variant"
        )
    cfg.train_datasets = {
        name: budget_table(f"{source}: [train.{name}]", overrides.pop(name), cfg, per_dataset=False)
        for name in list(overrides)
        if name in cfg.datasets
    }
    cfg.train_overrides = train_overrides(source, overrides, cfg)
    for key in ("batch_size", "log_every", "grid_size"):
        if cfg.train[key] < 1:
            raise ConfigError(
                f"{source}: [train] key {key!r} must be at least 1, got {cfg.train[key]}"
            )
    if cfg.train["steps"] < 0:
        raise ConfigError(f"{source}: [train] key 'steps' must be >= 0, got {cfg.train['steps']}")
    for key, allowed in (("precision", PRECISIONS), ("compile", COMPILE_MODES)):
        if cfg.train[key] not in allowed:
            raise ConfigError(
                f"{source}: [train] key {key!r} must be one of {', '.join(allowed)}, "
                f"got {cfg.train[key]!r}"
            )


def _read_parameters(cfg: MatrixConfig, data: dict[str, Any], source: str) -> None:
    """The parameter tables ``[architecture.NAME]``, ``[dataset.NAME]``, ``[metric.NAME]`` and
    ``[explainer.NAME]``, each resolved over its class's defaults."""
    arch_tables = {
        name: {k: v for k, v in table.items() if k != "variant_of"}
        if isinstance(table, dict)
        else table
        for name, table in data.get("architecture", {}).items()
    }
    cfg.architecture_params = param_tables(
        source,
        {"architecture": arch_tables},
        "architecture",
        cfg.architectures,
        lambda n: ARCHITECTURES.get(cfg.base_architecture(n)),
    )
    cfg.dataset_params = param_tables(source, data, "dataset", cfg.datasets, get_dataset)
    cfg.evaluator_params = {}
    for table, names in (("metric", cfg.metrics), ("explainer", cfg.explainers)):
        params = param_tables(source, data, table, names, lambda n: evaluator_registry(n).get(n))
        for name, values in params.items():  # declared ranges, before any trial runs
            evaluator_registry(name).get(name).validate(values, f"{source}: [{table}.{name}]")
        cfg.evaluator_params.update(params)


def with_architecture(cfg: MatrixConfig, name: str) -> MatrixConfig:
    """The matrix for one architecture alone (added when the matrix does not list it), with
    its untrained control: what a submission runs. Its trials have the keys the maintainers'
    matrix would give the same architecture, so a bundle of them can be checked and merged."""
    if name not in cfg.architectures:
        if name not in ARCHITECTURES:
            raise ConfigError(f"--architecture: {ARCHITECTURES.unknown_message(name)}")
        cls = ARCHITECTURES.get(name)
        cfg.architecture_params[name] = resolve_params(cls.defaults, None, f"architecture {name!r}")
    cfg.architectures = [name]
    cfg.references = [r for r in cfg.references if r != "real"]
    return cfg


def apply_overrides(cfg: MatrixConfig, seeds: list[int] | None, only: list[str]) -> MatrixConfig:
    """Narrow a matrix from the command line: ``--seeds 0,1`` and ``--only KEY=VALUE[,VALUE]``."""
    if seeds is not None:
        cfg.seeds = seeds
    fields = {
        "architecture": "architectures",
        "arch": "architectures",
        "dataset": "datasets",
        "metric": "metrics",
        "explainer": "explainers",
        "evaluator": "evaluators",
        "seed": "seeds",
        "reference": "references",
    }
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or key not in fields or not value:
            raise ConfigError(
                f"--only {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}"
            )
        wanted = value.split(",")
        attr = fields[key]
        if attr == "seeds":
            try:
                wanted_seeds = [int(v) for v in wanted]
            except ValueError:
                raise ConfigError(f"--only {item!r}: seeds must be integers") from None
            missing = [s for s in wanted_seeds if s not in cfg.seeds]
            if missing:
                raise ConfigError(
                    f"--only {item!r}: seed {missing[0]} is not in the matrix (seeds: {cfg.seeds})"
                )
            cfg.seeds = wanted_seeds
            continue
        current = cfg.evaluators if attr == "evaluators" else getattr(cfg, attr)
        for v in wanted:
            if v not in current:
                raise ConfigError(
                    f"--only {item!r}: {fields_singular(attr)} {v!r} is not in the matrix "
                    f"{cfg.name!r} (it has: {', '.join(current) or 'none'})"
                )
        if attr == "evaluators":
            cfg.metrics = [m for m in cfg.metrics if m in wanted]
            cfg.explainers = [e for e in cfg.explainers if e in wanted]
        else:
            setattr(cfg, attr, [v for v in current if v in wanted])
        if attr == "architectures":
            cfg.references = [r for r in cfg.references if r != "real"]
    return cfg


def fields_singular(attr: str) -> str:
    return {
        "architectures": "architecture",
        "datasets": "dataset",
        "metrics": "metric",
        "explainers": "explainer",
        "evaluators": "evaluator",
        "references": "reference",
    }[attr]
