"""What a matrix config holds: its top-level keys and their types, the ``[train]`` defaults and
the allowed values of each setting, and :class:`MatrixConfig`, the validated matrix.

Reading a TOML file into a :class:`MatrixConfig` is :mod:`ganbench.run.config_load`; the checks
it applies to each key and table are :mod:`ganbench.run.config_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
