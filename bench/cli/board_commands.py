"""``ganbench show``, ``compare`` and ``leaderboard``: the commands that report what stores and
bundles hold, each with its arguments beside its body.

The leaderboard and the bundles import torch, so they are imported inside their commands:
``ganbench --help`` stays a fifth of a second (measured with ``time python -m ganbench.cli
--help``; importing them takes seconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from ganbench.board.reproduce import Summary, compare
from ganbench.cli.run_commands import DEFAULT_STORE
from ganbench.cli.tables import status_table
from ganbench.core.errors import GanbenchError
from ganbench.core.plugins import load_plugin_file
from ganbench.run.store import Store


def add_show(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="trial status summary of a store")
    show.add_argument("--store", default=str(DEFAULT_STORE))
    show.add_argument(
        "--all", action="store_true", help="list every trial, not only the failed ones"
    )
    show.set_defaults(func=cmd_show)


def add_compare(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser(
        "compare",
        help="compare two stores or bundles score by score, within each score's tolerance",
    )
    cp.add_argument("ours", metavar="STORE_OR_BUNDLE")
    cp.add_argument("theirs", metavar="STORE_OR_BUNDLE")
    cp.add_argument("--limit", type=int, default=15, help="rows of the table (largest first)")
    cp.set_defaults(func=cmd_compare)


def add_leaderboard(sub: argparse._SubParsersAction) -> None:
    lb = sub.add_parser("leaderboard", help="render leaderboard/ from the store and result bundles")
    lb.add_argument("--store", default=str(DEFAULT_STORE))
    lb.add_argument("--out", default="leaderboard")
    lb.add_argument(
        "--config", action="append", help="matrix config(s) to render (default: every shipped one)"
    )
    lb.add_argument(
        "--plugin",
        action="append",
        metavar="FILE.py",
        help="a file registering the evaluators or architectures a config names (repeatable)",
    )
    lb.set_defaults(func=cmd_leaderboard)


def cmd_show(args: argparse.Namespace) -> int:
    if not Path(args.store).exists():
        raise GanbenchError(
            f"no store at {args.store}: run `ganbench run smoke` first or pass --store"
        )
    print(status_table(Store(args.store), show_all=args.all))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ganbench.run.bundles import load_records

    ours, theirs = load_records(Path(args.ours)), load_records(Path(args.theirs))
    summary = Summary(compare(ours, theirs))
    if not summary.agreements:
        raise GanbenchError(f"{args.ours} and {args.theirs} hold no trial key in common")
    diffs = sorted((d for a in summary.agreements for d in a.compared), key=lambda d: -d.excess)
    rows = []
    for d in diffs[: args.limit]:
        lab = ours[d.key].get("labels") or {}
        who = f"{lab.get('architecture')} ({lab.get('reference')}) {lab.get('dataset')} s{lab.get('seed')}"
        rows.append(
            [
                d.key[:12],
                who,
                f"{d.evaluator} {d.score}",
                f"{d.ours:.6g}",
                f"{d.theirs:.6g}",
                d.tolerance.words(),
                f"{d.excess:.2f}",
            ]
        )
    print(tabulate(rows, headers=["key", "trial", "score", "ours", "theirs", "tolerance", "x tol"]))
    for a in summary.differing[: args.limit]:
        if a.status == "status":
            print(f"  {a.key[:12]}: {a.note}")
    print(f"ganbench compare: {summary.line()}")
    return 0 if not summary.differing else 1


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ganbench.board.leaderboard import render_all

    for plugin in args.plugin or []:
        load_plugin_file(plugin)
    done = render_all(store_path=Path(args.store), out=Path(args.out), configs=args.config or None)
    for reason in done.refused:
        print(f"ganbench leaderboard: refused {reason}", file=sys.stderr)
    print(f"ganbench leaderboard: wrote {', '.join(str(p) for p in done.written)}")
    return 0
