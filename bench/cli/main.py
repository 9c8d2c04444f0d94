"""The ``ganbench`` command: list, run, export, show, show-dataset, leaderboard, check,
new-architecture, new-evaluator, train-domain, fingerprint, compare, migrate."""

from __future__ import annotations

import argparse
import sys

from ganbench.cli.board_commands import add_compare, add_leaderboard, add_show
from ganbench.cli.check_commands import (
    add_check,
    add_fingerprint,
    add_new_architecture,
    add_new_evaluator,
)
from ganbench.cli.data_commands import add_list, add_show_dataset, add_train_domain
from ganbench.cli.run_commands import add_export, add_migrate, add_run
from ganbench.core.errors import GanbenchError


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per command, in the order ``--help`` lists them; each
    command's arguments and body live together in its group's module (``run_commands``,
    ``board_commands``, ``check_commands``, ``data_commands``)."""
    p = argparse.ArgumentParser(prog="ganbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        add_list,
        add_run,
        add_export,
        add_check,
        add_new_architecture,
        add_new_evaluator,
        add_show,
        add_show_dataset,
        add_train_domain,
        add_migrate,
        add_compare,
        add_fingerprint,
        add_leaderboard,
    ):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GanbenchError as exc:
        print(f"ganbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ganbench show | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ganbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
