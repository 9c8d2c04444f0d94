"""``ganbench list``, ``show-dataset`` and ``train-domain``: the commands on what is registered
and on the datasets, each with its arguments beside its body.

The dataset preview and the domain networks import torch, so they are imported inside their
commands: ``ganbench --help`` stays a fifth of a second (measured with ``time python -m
ganbench.cli --help``; importing them takes seconds).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from ganbench.cli.tables import list_table
from ganbench.core import registry
from ganbench.core.errors import ConfigError, GanbenchError
from ganbench.core.registry import get_dataset


def add_list(sub: argparse._SubParsersAction) -> None:
    ls = sub.add_parser("list", help="list registered architectures, datasets, metrics, explainers")
    ls.add_argument(
        "family", nargs="?", choices=["architectures", "datasets", "metrics", "explainers"]
    )
    ls.set_defaults(func=cmd_list)


def add_show_dataset(sub: argparse._SubParsersAction) -> None:
    sd = sub.add_parser(
        "show-dataset", help="write a PNG of a dataset's real images (and masks, where it has them)"
    )
    sd.add_argument("name")
    sd.add_argument("--out", help="PNG path (default NAME.png)")
    sd.add_argument("--n", type=int, default=64, help="images in the grid (default 64)")
    sd.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a dataset parameter, e.g. --set image_size=64 or --set root=/data/mnist (repeatable)",
    )
    sd.set_defaults(func=cmd_show_dataset)


def add_train_domain(sub: argparse._SubParsersAction) -> None:
    td = sub.add_parser(
        "train-domain",
        help="train a dataset's domain network once and write it as the pinned, shipped weights",
    )
    td.add_argument("name")
    td.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="a dataset parameter (repeatable)"
    )
    td.add_argument("--out", help="folder to write NAME/ into (default: the package's weights/)")
    td.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: reproducible on one CPU)"
    )
    td.set_defaults(func=cmd_train_domain)


def cmd_list(args: argparse.Namespace) -> int:
    families = (
        [args.family] if args.family else ["architectures", "datasets", "metrics", "explainers"]
    )
    for fam in families:
        reg = {
            "architectures": registry.ARCHITECTURES,
            "datasets": registry.DATASETS,
            "metrics": registry.METRICS,
            "explainers": registry.EXPLAINERS,
        }[fam]
        print(list_table(fam, reg))
        print()
    return 0


def _parse_assignments(items: list[str]) -> dict:
    """``key=value`` pairs, each value read as a TOML value (a bare word stays a string)."""
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set image_size=64")
        try:
            params[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = text
    return params


def cmd_show_dataset(args: argparse.Namespace) -> int:
    from ganbench.datasets.preview import show_dataset

    get_dataset(args.name)  # an unknown name fails here, with the known ones listed
    out = Path(args.out or f"{args.name}.png")
    show_dataset(args.name, _parse_assignments(args.set or []), out, n=args.n)
    print(f"ganbench show-dataset: wrote {out}")
    return 0


def cmd_train_domain(args: argparse.Namespace) -> int:
    from ganbench.datasets.domain import PINNED_DIR, WEIGHTS
    from ganbench.run.domain import train_pinned

    spec_of = get_dataset(args.name)  # an unknown name fails here, with the known ones listed
    if not spec_of(**_parse_assignments(args.set or [])).spec.has_domain_network:
        raise GanbenchError(
            f"dataset {args.name!r} has neither labels nor factors: no domain network"
        )
    where, meta = train_pinned(
        args.name,
        _parse_assignments(args.set or []),
        Path(args.out) if args.out else PINNED_DIR,
        threads=args.threads,
        progress=True,
    )
    held_out = ", ".join(f"{k} {v:.4f}" for k, v in meta["metrics"].items())
    size = (where / WEIGHTS).stat().st_size
    print(
        f"ganbench train-domain {args.name}: wrote {where} ({size / 1024:.0f} KiB, sha256 "
        f"{meta['sha256']}) in {meta['trained']['seconds']:.0f} s; held-out {held_out}"
    )
    return 0
