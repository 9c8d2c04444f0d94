"""``ganbench check``, ``new-architecture``, ``new-evaluator`` and ``fingerprint``: the commands
that check code against the suite's contracts (an architecture's conformance, the golden
fingerprints) or start a new architecture or evaluator from its template, each with its
arguments beside its body.

The conformance suite and the fingerprints import torch, so they are imported inside their
commands: ``ganbench --help`` stays a fifth of a second (measured with ``time python -m
ganbench.cli --help``; importing them takes seconds).
"""

from __future__ import annotations

import argparse
import keyword
import re
from importlib import resources
from pathlib import Path

from tabulate import tabulate

from ganbench.core.errors import ConfigError, GanbenchError
from ganbench.core.plugins import load_plugin_file
from ganbench.core.registry import ARCHITECTURES


def add_check(sub: argparse._SubParsersAction) -> None:
    ck = sub.add_parser(
        "check", help="the conformance suite for an architecture (a registered name or a .py file)"
    )
    ck.add_argument("target", metavar="NAME_OR_FILE")
    ck.add_argument("--plugin", action="append", metavar="FILE.py", help="load this file first")
    ck.set_defaults(func=cmd_check)


def add_new_architecture(sub: argparse._SubParsersAction) -> None:
    na = sub.add_parser(
        "new-architecture",
        help="write a commented template of a new architecture that passes check",
    )
    na.add_argument("name")
    na.add_argument("--out", help="file to write (default NAME.py)")
    na.set_defaults(func=cmd_new_architecture)


def add_new_evaluator(sub: argparse._SubParsersAction) -> None:
    ne = sub.add_parser(
        "new-evaluator",
        help="write a commented template of a new metric (or explainer) that runs as written",
    )
    ne.add_argument("name")
    ne.add_argument("--out", help="file to write (default NAME.py)")
    ne.set_defaults(func=cmd_new_evaluator)


def add_fingerprint(sub: argparse._SubParsersAction) -> None:
    fpp = sub.add_parser(
        "fingerprint",
        help="check (or --record) the golden fingerprints: each component's numbers on a tiny input",
    )
    fpp.add_argument(
        "targets",
        nargs="*",
        metavar="FAMILY:NAME",
        help="e.g. architecture:dcgan, metric:mmd, or a bare name (default: every component)",
    )
    fpp.add_argument("--record", action="store_true", help="write the fingerprints")
    fpp.add_argument(
        "--force",
        action="store_true",
        help="record numbers that moved under unchanged versions (e.g. after a torch upgrade)",
    )
    fpp.add_argument(
        "--dir", help="fingerprint folder (default: the checkout's tests/fingerprints)"
    )
    fpp.set_defaults(func=cmd_fingerprint)


def cmd_check(args: argparse.Namespace) -> int:
    from ganbench.run.conformance import run_checks

    for plugin in args.plugin or []:
        load_plugin_file(plugin)
    target = args.target
    if target.endswith(".py") or Path(target).is_file():
        before = set(ARCHITECTURES.names())
        load_plugin_file(target)
        names = sorted(set(ARCHITECTURES.names()) - before)
        if not names:
            raise GanbenchError(
                f"{target} registers no architecture: decorate a class with "
                "@register_architecture('NAME')"
            )
    else:
        ARCHITECTURES.get(target)  # an unknown or broken name fails here, on one line
        names = [target]
    failed = passed = 0
    for name in names:
        results = run_checks(name)
        rows = [
            [r.check, "pass" if r.passed else "FAIL", r.detail, r.fix, f"{r.seconds:.1f}"]
            for r in results
        ]
        print(f"ganbench check {name}")
        print(tabulate(rows, headers=["check", "result", "found", "fix", "s"], tablefmt="simple"))
        print()
        passed += sum(r.passed for r in results)
        failed += sum(not r.passed for r in results)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def write_template(command: str, template: str, name: str, out: str | None, prefix: str) -> Path:
    """Write ``templates/<template>`` for ``name`` to ``out`` (default NAME.py): ``{{name}}``
    is the registered name, ``{{Class}}`` its class name, ``{{score}}`` the name with '-' as
    '_' (a prefix for score names)."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ConfigError(
            f"{command} {name!r}: use lower-case letters, digits, '-' or '_', starting with a letter"
        )
    path = Path(out or f"{name.replace('-', '_')}.py")
    if path.exists():
        raise GanbenchError(f"{path} exists: pass --out with another path, or remove it")
    ident = "".join(p.capitalize() for p in re.split(r"[-_]", name))
    if keyword.iskeyword(ident) or not ident.isidentifier():
        ident = f"{prefix}{ident}"
    text = (resources.files("ganbench.cli") / "templates" / template).read_text()
    text = text.replace("{{name}}", name).replace("{{Class}}", ident)
    path.write_text(text.replace("{{score}}", name.replace("-", "_")), encoding="utf-8")
    return path


def cmd_new_architecture(args: argparse.Namespace) -> int:
    out = write_template("new-architecture", "architecture.py.tmpl", args.name, args.out, "Arch")
    print(f"ganbench new-architecture: wrote {out}; next: ganbench check {out}")
    return 0


def cmd_new_evaluator(args: argparse.Namespace) -> int:
    out = write_template("new-evaluator", "evaluator.py.tmpl", args.name, args.out, "Metric")
    print(
        f"ganbench new-evaluator: wrote {out}; next: add {args.name!r} to a matrix's metrics "
        f"and run it with --plugin {out} (README: Adding a metric or an explainer)"
    )
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from ganbench.run import fingerprints as fp

    root = Path(args.dir) if args.dir else fp.DEFAULT_DIR
    targets = fp.parse_targets(args.targets)
    if args.record:
        for family, name in targets:
            path, summary = fp.on_one_thread(
                lambda f=family, n=name: fp.record(f, n, root, args.force)
            )
            print(f"ganbench fingerprint: wrote {path} ({summary})")
        return 0
    verdicts = [fp.on_one_thread(lambda f=f, n=n: fp.check(f, n, root)) for f, n in targets]
    rows = [
        [
            f"{v.family} {v.name}",
            "pass" if v.ok else "FAIL",
            f"{v.seconds:.1f}",
            "" if v.ok else v.message,
        ]
        for v in verdicts
    ]
    print(tabulate(rows, headers=["component", "result", "s", "what to do"], tablefmt="simple"))
    failed = sum(not v.ok for v in verdicts)
    print(f"{len(verdicts) - failed} passed, {failed} failed")
    return 1 if failed else 0
