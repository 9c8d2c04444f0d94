"""Matrix configs: TOML files validated on load, with errors naming the file, the key and what is allowed."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ganbench.core.errors import ConfigError, PluginLoadError
from ganbench.core.params import resolve_params
from ganbench.core.registry import (
    ARCHITECTURES,
    DATASETS,
    EXPLAINERS,
    METRICS,
    Registry,
    UnknownNameError,
    bad_name,
    evaluator_registry,
    get_dataset,
)

DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("local", "ray")
REFERENCES = ("untrained", "real")
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 1000,
    "batch_size": 64,
    "log_every": 25,
    "grid_size": 64,
    # numerics of the training step (part of the train trial's key when not the default):
    "precision": "fp32",  # "fp32" (TF32 off), "tf32" (CUDA: TF32 matmuls and convolutions),
    # "bf16" (autocast to bfloat16, CPU or CUDA)
    "compile": "none",  # torch.compile mode of G and D: "none", "default", "reduce-overhead"
    # (CUDA graphs on CUDA), "max-autotune"
}
PRECISIONS = ("fp32", "tf32", "bf16")
NUMERICS_KEYS = ("precision", "compile")  # in a train trial's key only when not the default
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
# ``[train.NAME]``: one architecture's own budget, where it needs more (or fewer) steps or seeds
ARCH_BUDGET_KEYS: dict[str, type] = {"steps": int, "batch_size": int, "seeds": list}
DATASET_BUDGET_KEYS: dict[str, type] = {"steps": int, "batch_size": int}

TOP_LEVEL = {
    "name": str,
    "description": str,
    "quick_look": bool,
    "seeds": list,
    "device": str,
    "executor": str,
    "workers": int,
    "trial_timeout": (int, float),
    "architectures": list,
    "datasets": list,
    "metrics": list,
    "explainers": list,
    "references": list,
    "checkpoints": list,
    "exclude": list,
    "train": dict,
    "architecture": dict,
    "dataset": dict,
    "metric": dict,
    "explainer": dict,
    "ray": dict,
}
# ``[ray]``: the Ray executor's options (they never change a trial's key)
RAY_KEYS: dict[str, tuple[type, ...]] = {
    "num_cpus": (int,),
    "num_cpus_per_trial": (int, float),
    "gpus_per_trial": (int, float),
    "max_retries": (int,),
}


@dataclass(frozen=True)
class RayOptions:
    """``[ray]``: how the Ray executor sizes, places and retries trials."""

    num_cpus: int | None = None  # CPUs of a local cluster it starts (default: the machine's)
    num_cpus_per_trial: float = 1  # Ray CPUs per task; torch uses as many threads
    gpus_per_trial: float = 1.0  # GPUs per task on cuda; 0.25 packs four small trials per GPU
    max_retries: int = 1  # reruns of a trial whose worker process died


@dataclass
class MatrixConfig:
    """A validated matrix: what to train, on what, with which seeds, scored by which evaluators."""

    name: str
    source: str
    description: str = ""
    # a quick look (what `make run` runs): rendered after the other matrices and labelled so,
    # its numbers not for citing
    quick_look: bool = False
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    executor: str = "local"
    workers: int = 1
    # seconds a trial may run before it is killed and recorded failed (0: no limit)
    trial_timeout: float = 0
    architectures: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    explainers: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    # step counts < each architecture's budget: the first seed also trains to each, and the
    # quality metrics score those partial trainings (the validity table's monotonicity)
    checkpoints: list[int] = field(default_factory=list)
    exclude: list[dict[str, str]] = field(default_factory=list)
    train: dict[str, Any] = field(default_factory=lambda: dict(TRAIN_DEFAULTS))
    train_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    architecture_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a variant (``[architecture.NAME] variant_of = "ifgan"``) -> its registered architecture
    variants: dict[str, str] = field(default_factory=dict)
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluator_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # architectures left out because their plugin failed to import -> why (the run goes on)
    broken: dict[str, str] = field(default_factory=dict)
    ray: RayOptions = field(default_factory=RayOptions)

    @property
    def evaluators(self) -> list[str]:
        return self.metrics + self.explainers

    def base_architecture(self, architecture: str) -> str:
        """The registered architecture behind a name of the ``architectures`` list."""
        return self.variants.get(architecture, architecture)

    def train_for(self, architecture: str, dataset: str | None = None) -> dict[str, Any]:
        """The ``[train]`` settings with the budgets of ``[train.DATASET]``, then
        ``[train.ARCHITECTURE]``, then ``[train.ARCHITECTURE.DATASET]`` applied (later wins)."""
        over = self.train_overrides.get(architecture, {})
        out = {**self.train, **self.train_datasets.get(dataset or "", {})}
        out.update({k: v for k, v in over.items() if k != "seeds" and not isinstance(v, dict)})
        if dataset:
            out.update(over.get(dataset, {}))  # the only table-valued keys are datasets
        return out

    def seeds_for(self, architecture: str) -> list[int]:
        """The seeds this architecture trains with: ``[train.ARCHITECTURE] seeds`` or all."""
        chosen = self.train_overrides.get(architecture, {}).get("seeds", self.seeds)
        return [s for s in self.seeds if s in chosen]  # `--seeds` on the command line narrows both

    def excluded(self, architecture: str, dataset: str) -> bool:
        """Whether an ``exclude`` entry leaves this architecture × dataset cell out of the matrix."""
        cell = {"architecture": architecture, "dataset": dataset}
        return any(all(cell[k] == v for k, v in entry.items()) for entry in self.exclude)


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


def _drop_broken(data: dict[str, Any], plugin_errors: list[str] | None) -> dict[str, str]:
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


def _expect(source: str, key: str, value: Any, kind: type) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        what = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{source}: key {key!r} must be a {what}, got {value!r}")


def _names(
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


def parse_config(
    data: dict[str, Any], source: str, plugin_errors: list[str] | None = None
) -> MatrixConfig:
    """Validate a parsed TOML document; every mistake raises :class:`ConfigError` with file and key."""
    data = dict(data)
    broken = _drop_broken(data, plugin_errors)
    for key, value in data.items():
        if key not in TOP_LEVEL:
            raise ConfigError(f"{source}: unknown key {key!r} (allowed: {', '.join(TOP_LEVEL)})")
        _expect(source, key, value, TOP_LEVEL[key])

    name = data.get("name", Path(source).stem)
    if bad_name(name):
        raise ConfigError(f"{source}: key 'name': {bad_name(name)}")
    cfg = MatrixConfig(name=name, source=source, description=data.get("description", ""))
    cfg.broken = broken
    cfg.quick_look = data.get("quick_look", False)

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
    cfg.ray = _ray_options(source, data.get("ray", {}))

    cfg.variants = _variants(source, data.get("architecture", {}))
    listed = data.get("architectures", [])
    cfg.architectures = _names(source, "architectures", listed, ARCHITECTURES, also=cfg.variants)
    cfg.datasets = _names(source, "datasets", data.get("datasets", []), DATASETS)
    cfg.metrics = _names(source, "metrics", data.get("metrics", []), METRICS)
    cfg.explainers = _names(source, "explainers", data.get("explainers", []), EXPLAINERS)
    cfg.references = _names(source, "references", data.get("references", []), None)
    for ref in cfg.references:
        if ref not in REFERENCES:
            raise ConfigError(
                f"{source}: key 'references' allows {', '.join(REFERENCES)}, got {ref!r}"
            )
    if not cfg.architectures and "real" not in cfg.references and not cfg.broken:
        raise ConfigError(f"{source}: key 'architectures' must name at least one architecture")
    if not cfg.datasets:
        raise ConfigError(f"{source}: key 'datasets' must name at least one dataset")

    cfg.exclude = _exclude(source, data.get("exclude", []), cfg)
    cfg.checkpoints = _checkpoints(source, data.get("checkpoints", []))

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
        name: _budget_table(
            f"{source}: [train.{name}]", overrides.pop(name), cfg, per_dataset=False
        )
        for name in list(overrides)
        if name in cfg.datasets
    }
    cfg.train_overrides = _train_overrides(source, overrides, cfg)
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

    arch_tables = {
        name: {k: v for k, v in table.items() if k != "variant_of"}
        if isinstance(table, dict)
        else table
        for name, table in data.get("architecture", {}).items()
    }
    cfg.architecture_params = _param_tables(
        source,
        {"architecture": arch_tables},
        "architecture",
        cfg.architectures,
        lambda n: ARCHITECTURES.get(cfg.base_architecture(n)),
    )
    cfg.dataset_params = _param_tables(source, data, "dataset", cfg.datasets, get_dataset)
    cfg.evaluator_params = {}
    for table, names in (("metric", cfg.metrics), ("explainer", cfg.explainers)):
        cfg.evaluator_params.update(
            _param_tables(source, data, table, names, lambda n: evaluator_registry(n).get(n))
        )
    return cfg


def _ray_options(source: str, table: dict[str, Any]) -> RayOptions:
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


def _variants(source: str, tables: dict) -> dict[str, str]:
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


def _train_overrides(source: str, tables: dict, cfg: MatrixConfig) -> dict[str, dict[str, Any]]:
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
        out[name] = _budget_table(where, table, cfg, per_dataset=True)
    return out


def _budget_table(where: str, table: dict, cfg: MatrixConfig, per_dataset: bool) -> dict:
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
            out[key] = _budget_table(f"{where[:-1]}.{key}]", value, cfg, per_dataset=False)
            continue
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        _expect(where, key, value, allowed[key])
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


def _exclude(source: str, entries: list, cfg: MatrixConfig) -> list[dict[str, str]]:
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


def _param_tables(
    source: str, data: dict, table: str, listed: list[str], lookup
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


def _checkpoints(source: str, values: list) -> list[int]:
    """``checkpoints``: distinct positive step counts, sorted."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(
                f"{source}: key 'checkpoints' lists step counts (integers >= 1), got {v!r}"
            )
    return sorted(set(values))


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
