"""``ganbench run`` (and ``run --dry-run``), ``export`` and ``migrate``: the commands that run a
matrix into a store or carry its records, each with its arguments beside its body.

The stages that import torch (the runner, the estimates, the bundles, the migration) are
imported inside the commands: importing them here would make ``ganbench --help`` take
seconds instead of a fifth of one (measured with ``time python -m ganbench.cli --help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tabulate import tabulate

from ganbench.core.errors import ConfigError, GanbenchError, PluginLoadError
from ganbench.core.plugins import load_plugin_file
from ganbench.core.registry import ARCHITECTURES
from ganbench.run.config import MatrixConfig
from ganbench.run.config_load import apply_overrides, load_config, with_architecture
from ganbench.run.store import Store

DEFAULT_STORE = Path("runs") / "ganbench.sqlite"
HISTORY = Path("leaderboard") / "runs"  # the committed board's records, for estimates


def add_run(sub: argparse._SubParsersAction) -> None:
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
    _add_run_control(run)


def _add_run_control(run: argparse.ArgumentParser) -> None:
    """``run``'s options on how the trials run and what it prints."""
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


def add_export(sub: argparse._SubParsersAction) -> None:
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


def add_migrate(sub: argparse._SubParsersAction) -> None:
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


def load_plugins(paths: list[str] | None) -> tuple[list[str], list[str]]:
    """Import ``--plugin`` files; returns (loaded paths, one-line errors of those that failed).

    A plugin that fails to import is reported, and the run goes on without it."""
    loaded, errors = [], []
    for plugin in paths or []:
        try:
            load_plugin_file(plugin)
            loaded.append(plugin)
        except PluginLoadError as exc:
            errors.append(str(exc))
            print(f"ganbench: warning: {exc}", file=sys.stderr)
    return loaded, errors


def _matrix_from_args(args: argparse.Namespace) -> tuple[MatrixConfig, list[str]]:
    """The config named on the command line, with plugins, ``--architecture`` and narrowing."""
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


def _costs(store):
    from ganbench.run.estimate import history

    return history((r.as_dict() for r in store.records()) if store else (), HISTORY)


def _dry_run(args: argparse.Namespace, cfg: MatrixConfig) -> int:
    """``run --dry-run``: one line per trial with its status and estimated seconds; no store
    is created or changed."""
    from ganbench.run.dry_run import dry_run, dry_run_totals
    from ganbench.run.numerics import resolve_device

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
    headers = ["key", "kind", "architecture", "dataset", "seed", "evaluator", "status", "est. s"]
    print(tabulate([_dry_run_row(p) for p in planned], headers=headers))
    print()
    if any(p.trial.provisional for p in planned):
        print("* provisional key: it names the domain trial until that trial's weights exist")
    print(_dry_run_line(cfg, totals, device))
    return 0


def _dry_run_row(planned) -> list:
    """One planned trial as a row of the dry run's table."""
    lab = planned.trial.labels
    who = lab.get("architecture", "")
    if lab.get("reference") not in (None, "trained", "real"):
        who += f" ({lab['reference']})"
    return [
        planned.trial.key[:12] + ("*" if planned.trial.provisional else ""),
        planned.trial.kind,
        who,
        lab.get("dataset"),
        lab.get("seed"),
        lab.get("evaluator", ""),
        planned.status,
        f"{planned.seconds:.0f}" if planned.status == "to run" else "",
    ]


def _dry_run_line(cfg: MatrixConfig, totals: dict, device: str) -> str:
    """The dry run's last line: trials by status, estimated trial and wall time."""
    from ganbench.run.estimate import duration

    unknown = totals["estimates_without_record"]
    return (
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


def cmd_export(args: argparse.Namespace) -> int:
    from ganbench.run.bundles import export_bundle

    if not Path(args.store).exists():
        raise GanbenchError(f"no store at {args.store}: run the matrix first or pass --store")
    cfg, _ = _matrix_from_args(args)
    path, summary = export_bundle(
        Store(args.store), cfg, args.architecture, Path(args.out), args.device
    )
    print(f"ganbench export: wrote {path} ({summary})")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ganbench.run import migrate
    from ganbench.run.bundles import BUNDLE_SCHEMA

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
