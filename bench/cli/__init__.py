"""The ``ganbench`` command: every stage's entry points."""

from ganbench.cli.main import main

__all__ = ["main"]
