"""One generic registry, used by every family: architectures, datasets, metrics, explainers.

Built-in members are found by importing every module of the family's package on first
use (timm-style: a new file registers itself); third-party members come from the
entry-point group ``ganbench.<family>`` and are imported only when asked for by name.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from ganbench.core.errors import GanbenchError, PluginLoadError

T = TypeVar("T")

# what a registered name, a variant's or a matrix's name may be: it becomes part of file names
# (figures/<matrix>-<device>/<dataset>/<architecture>-..., runs/<matrix>-<device>.json), so no
# path separator, no leading dot, nothing a shell or a browser reads specially
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


def bad_name(name: object) -> str | None:
    """Why ``name`` cannot name an architecture, dataset, evaluator or matrix; None if it can."""
    if not isinstance(name, str):
        return f"a name must be a string, got {type(name).__name__}"
    if not NAME_PATTERN.fullmatch(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        return f"{shown!r} is not a valid name ({NAME_RULE})"
    return None


class UnknownNameError(GanbenchError, KeyError):
    """An unknown registry name; the message lists the known names and the closest match."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to classes of one family, with lazy built-ins and entry points."""

    def __init__(self, kind: str, package: str, group: str) -> None:
        self.kind = kind  # singular noun used in messages: "architecture"
        self.package = package  # package whose modules hold the built-ins
        self.group = group  # entry-point group for third-party members
        self._classes: dict[str, type[T]] = {}
        self._entry_points: dict[str, EntryPoint] | None = None
        self._builtins_loaded = False
        self._loading = False

    def register(self, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@registry.register("dcgan")``."""

        def decorator(cls: type[T]) -> type[T]:
            key = name or getattr(cls, "name", None)
            if not key:
                raise ValueError(f"{cls!r} needs a name to be registered as a {self.kind}")
            why = bad_name(key)
            if why:
                raise ValueError(f"cannot register {self.kind} {_qualname(cls)}: {why}")
            existing = self._classes.get(key)
            if (
                existing is not None
                and existing is not cls
                and _qualname(existing) != _qualname(cls)
            ):
                raise ValueError(
                    f"{self.kind} {key!r} is registered twice: {_qualname(existing)} and {_qualname(cls)}"
                )
            cls.name = key
            self._classes[key] = cls
            return cls

        return decorator

    def _load_builtins(self) -> None:
        if self._builtins_loaded or self._loading:
            return
        self._loading = True
        try:
            pkg = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(pkg.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")
            self._builtins_loaded = True
        finally:
            self._loading = False

    def _eps(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def names(self) -> list[str]:
        """All known names, built-in and from entry points, sorted."""
        self._load_builtins()
        return sorted(set(self._classes) | set(self._eps()))

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``; an unknown name raises :class:`UnknownNameError`."""
        self._load_builtins()
        if name in self._classes:
            return self._classes[name]
        ep = self._eps().get(name)
        if ep is not None:
            try:
                obj = ep.load()
            except (
                Exception
            ) as exc:  # a broken third-party package: one clear line, not a traceback
                raise PluginLoadError(
                    f"{self.kind} {name!r} (entry point {ep.value!r} in group {self.group!r}) "
                    f"failed to import: {type(exc).__name__}: {exc}"
                ) from None
            if name not in self._classes:
                if isinstance(obj, type):
                    self.register(name)(obj)
                else:
                    raise GanbenchError(
                        f"entry point {ep.value!r} in group {self.group!r} did not register a "
                        f"{self.kind} named {name!r}; point it at the class or register it by decorator"
                    )
            return self._classes[name]
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str, context: str = "") -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        where = f" {context}" if context else ""
        return f"unknown {self.kind} {name!r}{where}{hint} (known: {', '.join(known) or 'none'})"

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self.names()


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ARCHITECTURES: Registry = Registry(
    "architecture", "ganbench.architectures", "ganbench.architectures"
)
DATASETS: Registry = Registry("dataset", "ganbench.datasets", "ganbench.datasets")
METRICS: Registry = Registry("metric", "ganbench.metrics", "ganbench.metrics")
EXPLAINERS: Registry = Registry("explainer", "ganbench.explainers", "ganbench.explainers")

register_architecture = ARCHITECTURES.register
create_architecture = ARCHITECTURES.create
get_architecture = ARCHITECTURES.get
list_architectures = ARCHITECTURES.names

register_dataset = DATASETS.register
create_dataset = DATASETS.create
get_dataset = DATASETS.get
list_datasets = DATASETS.names

register_metric = METRICS.register
create_metric = METRICS.create
get_metric = METRICS.get
list_metrics = METRICS.names

register_explainer = EXPLAINERS.register
create_explainer = EXPLAINERS.create
get_explainer = EXPLAINERS.get
list_explainers = EXPLAINERS.names


def evaluator_registry(name: str) -> Registry:
    """The registry (metrics or explainers) that knows ``name``."""
    if name in METRICS:
        return METRICS
    if name in EXPLAINERS:
        return EXPLAINERS
    raise UnknownNameError(METRICS.unknown_message(name))
