"""The ``ganbench`` command: list, run, export, show, show-dataset, leaderboard, check,
train-domain, fingerprint, compare, migrate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganbench.core.errors import ConfigError, GanbenchError

DEFAULT_STORE = Path("runs") / "ganbench.sqlite"


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: expected comma-separated integers such as 0,1,2"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds {text!r}: expected non-negative integers such as 0,1,2")
    return seeds


def cmd_list(args: argparse.Namespace) -> int:
    from ganbench.cli.tables import list_table
    from ganbench.core import registry

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


def load_plugins(paths: list[str] | None) -> tuple[list[str], list[str]]:
    """Import ``--plugin`` files; returns (loaded paths, one-line errors of those that failed).

    A plugin that fails to import is reported, and the run goes on without it."""
    from ganbench.core.errors import PluginLoadError
    from ganbench.core.plugins import load_plugin_file

    loaded, errors = [], []
    for plugin in paths or []:
        try:
            load_plugin_file(plugin)
            loaded.append(plugin)
        except PluginLoadError as exc:
            errors.append(str(exc))
            print(f"ganbench: warning: {exc}", file=sys.stderr)
    return loaded, errors


def _matrix_from_args(args: argparse.Namespace):
    """The config named on the command line, with plugins, ``--architecture`` and narrowing."""
    from ganbench.core.registry import ARCHITECTURES
    from ganbench.run.config import apply_overrides, load_config, with_architecture

    loaded, errors = load_plugins(args.plugin)
    cfg = load_config(args.config, errors)
    if getattr(args, "architecture", None):
        if args.architecture not in ARCHITECTURES and errors:
            raise GanbenchError(
                f"--architecture {args.architecture!r} is not registered: {'; '.join(errors)}"
            )
        cfg = with_architecture(cfg, args.architecture)
    seeds = _parse_seeds(args.seeds) if getattr(args, "seeds", None) else None
    cfg = apply_overrides(cfg, seeds, getattr(args, "only", None) or [])
    return cfg, loaded


def cmd_run(args: argparse.Namespace) -> int:
    from ganbench.run.runner import run_matrix
    from ganbench.run.store import Store
    from ganbench.run.trials import describe

    cfg, plugins = _matrix_from_args(args)
    # --address joins a Ray cluster, so it implies --executor ray
    executor = args.executor or ("ray" if args.address else cfg.executor)
    if args.address and executor != "ray":
        raise ConfigError(
            f"--address {args.address} joins a Ray cluster: use it with --executor ray"
        )
    if args.dry_run:
        return _dry_run(args, cfg)
    if executor == "ray":
        from ganbench.run.ray_executor import import_ray

        import_ray()  # without Ray: one line saying how to install it, before the store exists
    store = Store(args.store)
    summary = run_matrix(
        cfg,
        store,
        device=args.device,
        workers=args.workers,
        quiet=args.quiet,
        plugins=plugins,
        executor=executor,
        address=args.address,
        costs=_costs(store),
        in_process=args.in_process,
        trial_timeout=args.trial_timeout,
    )
    print(f"ganbench run {cfg.name}: {summary.line()}; store {args.store}")
    for trial, error in summary.failed:
        print(f"  failed: {describe(trial)} [{trial.key[:12]}]: {error}")
    for name, why in cfg.broken.items():
        print(f"  failed: architecture {name} (not run): {why}")
    return min(len(summary.failed) + len(cfg.broken), 100)


HISTORY = Path("leaderboard") / "runs"  # the committed board's records, for estimates


def _costs(store):
    from ganbench.run.estimate import history

    return history((r.as_dict() for r in store.records()) if store else (), HISTORY)


def _dry_run(args: argparse.Namespace, cfg) -> int:
    """``run --dry-run``: one line per trial with its status and estimated seconds; no store
    is created or changed."""
    import json

    from tabulate import tabulate

    from ganbench.run.dry_run import dry_run, dry_run_totals
    from ganbench.run.estimate import duration
    from ganbench.run.numerics import resolve_device
    from ganbench.run.store import Store

    device = resolve_device(cfg.device if args.device == "auto" else args.device).type
    store = Store(args.store) if Path(args.store).exists() else None
    planned = dry_run(cfg, store, device, _costs(store))
    totals = dry_run_totals(planned, args.workers or cfg.workers)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "matrix": cfg.name,
                    "device": device,
                    "store": args.store,
                    "totals": totals,
                    "trials": [p.as_json() for p in planned],
                },
                indent=1,
            )
        )
        return 0
    rows = []
    for p in planned:
        lab = p.trial.labels
        who = lab.get("architecture", "")
        if lab.get("reference") not in (None, "trained", "real"):
            who += f" ({lab['reference']})"
        rows.append(
            [
                p.trial.key[:12] + ("*" if p.trial.provisional else ""),
                p.trial.kind,
                who,
                lab.get("dataset"),
                lab.get("seed"),
                lab.get("evaluator", ""),
                p.status,
                f"{p.seconds:.0f}" if p.status == "to run" else "",
            ]
        )
    print(
        tabulate(
            rows,
            headers=[
                "key",
                "kind",
                "architecture",
                "dataset",
                "seed",
                "evaluator",
                "status",
                "est. s",
            ],
        )
    )
    print()
    if any(p.trial.provisional for p in planned):
        print("* provisional key: it names the domain trial until that trial's weights exist")
    unknown = totals["estimates_without_record"]
    print(
        f"ganbench run {cfg.name} --dry-run: {totals['trials']} trials: {totals['done']} done, "
        f"{totals['to_run']} to run, {totals['n/a']} n/a"
        + (
            f", {totals['running_elsewhere']} running elsewhere"
            if totals["running_elsewhere"]
            else ""
        )
        + f"; estimated {duration(totals['estimated_trial_s'])} of trials, about "
        f"{duration(totals['estimated_wall_s'])} wall with {totals['workers']} worker(s) on "
        f"{device}" + (f" ({unknown} estimates without a recorded trial)" if unknown else "")
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ganbench.run.bundles import export_bundle
    from ganbench.run.store import Store

    if not Path(args.store).exists():
        raise GanbenchError(f"no store at {args.store}: run the matrix first or pass --store")
    cfg, _ = _matrix_from_args(args)
    path, summary = export_bundle(
        Store(args.store), cfg, args.architecture, Path(args.out), args.device
    )
    print(f"ganbench export: wrote {path} ({summary})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ganbench.core.plugins import load_plugin_file
    from ganbench.core.registry import ARCHITECTURES
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


def cmd_new_architecture(args: argparse.Namespace) -> int:
    import keyword
    import re
    from importlib import resources

    name = args.name
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ConfigError(
            f"new-architecture {name!r}: use lower-case letters, digits, '-' or '_', starting with a letter"
        )
    out = Path(args.out or f"{name.replace('-', '_')}.py")
    if out.exists():
        raise GanbenchError(f"{out} exists: pass --out with another path, or remove it")
    ident = "".join(p.capitalize() for p in re.split(r"[-_]", name))
    if keyword.iskeyword(ident) or not ident.isidentifier():
        ident = f"Arch{ident}"
    text = (resources.files("ganbench.cli") / "templates" / "architecture.py.tmpl").read_text()
    out.write_text(text.replace("{{name}}", name).replace("{{Class}}", ident), encoding="utf-8")
    print(f"ganbench new-architecture: wrote {out}; next: ganbench check {out}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ganbench.cli.tables import status_table
    from ganbench.run.store import Store

    if not Path(args.store).exists():
        raise GanbenchError(
            f"no store at {args.store}: run `ganbench run smoke` first or pass --store"
        )
    print(status_table(Store(args.store), show_all=args.all))
    return 0


def _parse_assignments(items: list[str]) -> dict:
    """``key=value`` pairs, each value read as a TOML value (a bare word stays a string)."""
    import tomllib

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
    from ganbench.core.registry import get_dataset
    from ganbench.datasets.preview import show_dataset

    get_dataset(args.name)  # an unknown name fails here, with the known ones listed
    out = Path(args.out or f"{args.name}.png")
    show_dataset(args.name, _parse_assignments(args.set or []), out, n=args.n)
    print(f"ganbench show-dataset: wrote {out}")
    return 0


def cmd_train_domain(args: argparse.Namespace) -> int:
    from ganbench.core.registry import get_dataset
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


def cmd_compare(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ganbench.board.reproduce import Summary, compare
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


def cmd_migrate(args: argparse.Namespace) -> int:
    import json

    from ganbench.run import migrate
    from ganbench.run.bundles import BUNDLE_SCHEMA
    from ganbench.run.config import load_config
    from ganbench.run.store import Store

    path = Path(args.bundle)
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GanbenchError(f"cannot read bundle {path}: {exc}") from None
    if bundle.get("trial_schema") != 1 or bundle.get("origin") != "maintainers":
        raise GanbenchError(
            f"{path} is not a maintainers' bundle of schema-1 trials: nothing to migrate"
        )
    cfg = load_config(args.config or bundle["matrix"])
    done = migrate.plan(bundle["records"], cfg, bundle["device_type"])
    print(f"ganbench migrate: {done.line()}")
    if args.dry_run:
        return 0
    store = Store(args.store)
    written = migrate.apply(done, store)
    kept = [migrate.migrated_record(rec, trial) for rec, trial in done.kept]
    bundle |= {"schema": BUNDLE_SCHEMA, "trial_schema": migrate.SCHEMA_VERSION, "records": kept}
    path.write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"ganbench migrate: {written} records written to {args.store}; {path} now holds the "
        f"{len(kept)} kept records. Next: ganbench run {cfg.name} --store {args.store}, then "
        f"ganbench leaderboard --store {args.store}"
    )
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from tabulate import tabulate

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


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ganbench.board.leaderboard import render_all

    done = render_all(store_path=Path(args.store), out=Path(args.out), configs=args.config or None)
    for reason in done.refused:
        print(f"ganbench leaderboard: refused {reason}", file=sys.stderr)
    print(f"ganbench leaderboard: wrote {', '.join(str(p) for p in done.written)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list registered architectures, datasets, metrics, explainers")
    ls.add_argument(
        "family", nargs="?", choices=["architectures", "datasets", "metrics", "explainers"]
    )
    ls.set_defaults(func=cmd_list)

    run = sub.add_parser(
        "run", help="run a matrix config (a shipped name such as smoke, or a TOML path)"
    )
    run.add_argument("config")
    run.add_argument(
        "--store", default=str(DEFAULT_STORE), help="SQLite store (default runs/ganbench.sqlite)"
    )
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--seeds", help="comma-separated seeds overriding the config's, e.g. 0,1,2")
    run.add_argument(
        "--only",
        action="append",
        metavar="KEY=VALUE",
        help="narrow the matrix, e.g. --only arch=dcgan,sagan --only seed=0: values of one "
        "key comma-separated; each repetition narrows further",
    )
    run.add_argument(
        "--workers",
        type=int,
        help="parallel worker processes (default: the config's); with --executor ray, "
        "the most trials in flight at once (default: as many as the cluster holds)",
    )
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="local (default): this machine; ray: one Ray task per trial "
        "(pip install 'ganbench[ray]'; see docs/scaling.md)",
    )
    run.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="join the Ray cluster at this address (implies --executor ray; default: "
        "$RAY_ADDRESS, else a local cluster for the run)",
    )
    run.add_argument(
        "--plugin",
        action="append",
        metavar="FILE.py",
        help="a Python file registering extra architectures or evaluators (repeatable)",
    )
    run.add_argument(
        "--architecture",
        metavar="NAME",
        help="run the matrix for this architecture alone, added when the matrix does not list "
        "it (what a submission runs; see SUBMITTING.md)",
    )
    run.add_argument(
        "--trial-timeout",
        type=float,
        metavar="SECONDS",
        help="kill a trial that runs longer and record it failed (default: the config's "
        "trial_timeout; 0: no limit)",
    )
    run.add_argument(
        "--in-process",
        action="store_true",
        help="run the trials one by one in this process (for debugging: a crash ends the run, "
        "no time limit) instead of in worker processes",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print each trial (key, kind, status, estimated seconds) and the totals; run nothing",
    )
    run.add_argument(
        "--format", choices=["table", "json"], default="table", help="--dry-run output format"
    )
    run.set_defaults(func=cmd_run)

    ex = sub.add_parser(
        "export",
        help="write a result bundle of one architecture's trials for the leaderboard (a submission)",
    )
    ex.add_argument("--store", default=str(DEFAULT_STORE))
    ex.add_argument("--architecture", required=True, metavar="NAME")
    ex.add_argument(
        "--config", default="smoke", help="the matrix the results belong to (default smoke)"
    )
    ex.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device type run on")
    ex.add_argument(
        "--plugin", action="append", metavar="FILE.py", help="the file registering the architecture"
    )
    ex.add_argument("--out", default="leaderboard/runs", help="folder (default leaderboard/runs)")
    ex.set_defaults(func=cmd_export)

    ck = sub.add_parser(
        "check", help="the conformance suite for an architecture (a registered name or a .py file)"
    )
    ck.add_argument("target", metavar="NAME_OR_FILE")
    ck.add_argument("--plugin", action="append", metavar="FILE.py", help="load this file first")
    ck.set_defaults(func=cmd_check)

    na = sub.add_parser(
        "new-architecture",
        help="write a commented template of a new architecture that passes check",
    )
    na.add_argument("name")
    na.add_argument("--out", help="file to write (default NAME.py)")
    na.set_defaults(func=cmd_new_architecture)

    show = sub.add_parser("show", help="trial status summary of a store")
    show.add_argument("--store", default=str(DEFAULT_STORE))
    show.add_argument(
        "--all", action="store_true", help="list every trial, not only the failed ones"
    )
    show.set_defaults(func=cmd_show)

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

    mg = sub.add_parser(
        "migrate",
        help="re-key a maintainers' bundle of schema-1 records into a store, keeping what the "
        "fingerprints vouch for (the rest is left for `ganbench run`)",
    )
    mg.add_argument("bundle", metavar="BUNDLE.json")
    mg.add_argument("--config", help="the matrix (default: the bundle's)")
    mg.add_argument("--store", default=str(DEFAULT_STORE))
    mg.add_argument("--dry-run", action="store_true", help="say what would be kept; write nothing")
    mg.set_defaults(func=cmd_migrate)

    cp = sub.add_parser(
        "compare",
        help="compare two stores or bundles score by score, within each score's tolerance",
    )
    cp.add_argument("ours", metavar="STORE_OR_BUNDLE")
    cp.add_argument("theirs", metavar="STORE_OR_BUNDLE")
    cp.add_argument("--limit", type=int, default=15, help="rows of the table (largest first)")
    cp.set_defaults(func=cmd_compare)

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

    lb = sub.add_parser("leaderboard", help="render leaderboard/ from the store and result bundles")
    lb.add_argument("--store", default=str(DEFAULT_STORE))
    lb.add_argument("--out", default="leaderboard")
    lb.add_argument(
        "--config", action="append", help="matrix config(s) to render (default: every shipped one)"
    )
    lb.set_defaults(func=cmd_leaderboard)
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
