"""Loading a single-file plugin (``--plugin my_gan.py``) that registers architectures or evaluators."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from ganbench.core.errors import GanbenchError, PluginLoadError


def load_plugin_file(path: str | Path) -> None:
    """Import a Python file once so its ``@register_*`` decorators run."""
    path = Path(path).resolve()
    if not path.is_file():
        raise GanbenchError(f"plugin {path} does not exist: pass the path of a .py file")
    name = f"ganbench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginLoadError(
            f"plugin {path} failed to import: {type(exc).__name__}: {exc}{_where(exc, path)}"
        ) from None


def _where(exc: BaseException, path: Path) -> str:
    """`` (line N)`` of the plugin file where the import failed, when the traceback says."""
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    if line is None:
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
        line = frames[-1].lineno if frames else None
    return f" (line {line})" if line else ""
