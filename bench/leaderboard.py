"""Rendering the leaderboard from the store and from result bundles.

For each matrix config and device type, the trials of the matrix are looked up by key
(so results of different matrices or devices are never mixed), aggregated over seeds,
and written as ``README.md``, ``results.csv``, ``figures/`` and ``runs/<matrix>-<device>.json``
(the raw records, so the leaderboard can be re-rendered without the store).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from ganbench.config import MatrixConfig, load_config, shipped_configs
from ganbench.errors import GanbenchError
from ganbench.execute import SAMPLE_GRID
from ganbench.registry import evaluator_registry
from ganbench.scores import Score
from ganbench.store import Store
from ganbench.trials import SCHEMA_VERSION, Trial, expand

DEVICE_TYPES = ("cuda", "cpu")
BUNDLE_SCHEMA = 1

# Cost figures of train trials, declared once like every score.
COST_SCORES = (
    Score("train_s", "lower", "wall-clock seconds of the whole training loop", "s"),
    Score(
        "s_per_step_median",
        "lower",
        "median seconds per training step (G and D update), warm-up excluded",
        "s",
    ),
    Score("images_per_s", "higher", "real images consumed per second of training", "img/s"),
    Score(
        "generate_images_per_s",
        "higher",
        "images generated per second in eval mode, batch 256",
        "img/s",
    ),
    Score(
        "peak_mem_mb",
        "lower",
        "peak memory while training: CUDA max allocated, or CPU resident set",
        "MiB",
    ),
    Score("params_generator", "none", "parameters in the generator", "", primary=False),
    Score("params_discriminator", "none", "parameters in the discriminator", "", primary=False),
)


@dataclass
class Row:
    """One row of a table: an architecture or a control (untrained network, real data)."""

    architecture: str
    reference: str  # "trained" | "untrained" | "real"

    @property
    def label(self) -> str:
        if self.reference == "real":
            return "*real data (reference)*"
        if self.reference == "untrained":
            return f"*{self.architecture} (untrained)*"
        return self.architecture

    @property
    def is_control(self) -> bool:
        return self.reference != "trained"


def _load_bundles(folder: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise GanbenchError(
                f"result bundle {path} is not valid JSON ({exc}): fix or remove it"
            ) from None
        if bundle.get("schema") != BUNDLE_SCHEMA:
            raise GanbenchError(
                f"result bundle {path} has schema {bundle.get('schema')!r}, expected {BUNDLE_SCHEMA}"
            )
        for rec in bundle.get("records", []):
            records[rec["key"]] = rec
    return records


def collect_records(store_path: Path, bundle_dir: Path) -> dict[str, dict]:
    """Trial records by key: bundles first, then the store (newer) over them."""
    records = _load_bundles(bundle_dir) if bundle_dir.is_dir() else {}
    if store_path.exists():
        store = Store(store_path)
        for rec in store.records():
            if rec.status in ("finished", "failed", "n/a"):
                records[rec.key] = rec.as_dict()
        store.close()
    return records


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    if all(0 <= v < 0.001 for v in values) and any(v > 0 for v in values):
        return "< 0.001"  # p-values and the like: "0.000 ± 0.000" would hide that they are not zero
    mean = float(np.mean(values))
    digits = 3 if abs(mean) < 100 else 1
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"


def _fmt_cost(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


class MatrixView:
    """The trials of one matrix on one device type, with their records."""

    def __init__(self, cfg: MatrixConfig, device_type: str, records: dict[str, dict]) -> None:
        self.cfg = cfg
        self.device_type = device_type
        self.trials: list[Trial] = expand(cfg, device_type)
        self.records = {t.key: records[t.key] for t in self.trials if t.key in records}

    @property
    def empty(self) -> bool:
        """No finished train or evaluation on this device (domain networks are device-free:
        they alone do not make a device's section)."""
        return not any(
            r["status"] == "finished" and r["kind"] != "domain" for r in self.records.values()
        )

    @property
    def slug(self) -> str:
        return f"{self.cfg.name}-{self.device_type}"

    def devices(self) -> list[str]:
        return sorted(
            {(r.get("env") or {}).get("device", "?") for r in self.records.values() if r.get("env")}
        )

    def commits(self) -> list[str]:
        return sorted(
            {
                (r.get("env") or {}).get("git_commit") or "unknown"
                for r in self.records.values()
                if r.get("env")
            }
        )

    def rows(self, dataset: str) -> list[Row]:
        seen: dict[tuple[str, str], Row] = {}
        for t in self.trials:
            if t.labels["dataset"] == dataset and t.kind != "domain":
                lab = t.labels
                arch = lab["architecture"] if lab["reference"] != "real" else "real data"
                seen.setdefault((arch, lab["reference"]), Row(arch, lab["reference"]))
        order = {"trained": 0, "untrained": 1, "real": 2}
        return sorted(seen.values(), key=lambda r: (order[r.reference], r.architecture))

    def cells(
        self, dataset: str, row: Row, kind: str, evaluator: str | None = None
    ) -> list[tuple[Trial, dict | None]]:
        out = []
        for t in self.trials:
            lab = t.labels
            if t.kind != kind or lab["dataset"] != dataset or lab["reference"] != row.reference:
                continue
            if row.reference != "real" and lab["architecture"] != row.architecture:
                continue
            if evaluator is not None and lab.get("evaluator") != evaluator:
                continue
            out.append((t, self.records.get(t.key)))
        return out


def score_columns(
    cfg: MatrixConfig, evaluators: list[str] | None = None
) -> list[tuple[str, Score]]:
    cols = []
    for ev in cfg.evaluators if evaluators is None else evaluators:
        cls = evaluator_registry(ev).get(ev)
        cols.extend((ev, s) for s in cls.scores if s.primary)
    return cols


def _cell(
    view: MatrixView, dataset: str, row: Row, ev: str, score: Score, notes: list[str]
) -> tuple[str, list[float]]:
    cells = view.cells(dataset, row, "evaluate", ev)
    values = [
        rec["scores"][score.name]
        for _, rec in cells
        if rec and rec["status"] == "finished" and score.name in (rec["scores"] or {})
    ]
    statuses = {rec["status"] if rec else "missing" for _, rec in cells}
    if values:
        text = _fmt(values)
        if len(values) < len(cells):
            text += f" ({len(values)}/{len(cells)} seeds)"
        return text, values
    if "n/a" in statuses:
        return "n/a", []
    if "failed" in statuses:
        errors = [rec["error"] for _, rec in cells if rec and rec["status"] == "failed"]
        notes.append(f"{row.label} × {ev}: {errors[0]}")
        return f"failed[^{len(notes)}]", []
    return "not run", []


def win_rates(
    means: dict[int, dict[str, float]], columns: list[tuple[str, Score]], rows: list[Row]
) -> dict[int, float]:
    """HELM-style mean win rate: per directional column, the share of other architectures a row beats."""
    contenders = [i for i, r in enumerate(rows) if not r.is_control]
    rates: dict[int, list[float]] = defaultdict(list)
    for ev, score in columns:
        if score.direction == "none":
            continue
        col = f"{ev}/{score.name}"
        have = [i for i in contenders if col in means[i]]
        if len(have) < 2:
            continue
        sign = 1 if score.direction == "higher" else -1
        for i in have:
            beats = sum(sign * means[i][col] > sign * means[j][col] for j in have if j != i)
            ties = sum(means[i][col] == means[j][col] for j in have if j != i)
            rates[i].append((beats + 0.5 * ties) / (len(have) - 1))
    return {i: float(np.mean(v)) for i, v in rates.items()}


def quality_table(
    view: MatrixView, dataset: str, notes: list[str], evaluators: list[str] | None = None
) -> str:
    """Rows × primary scores of ``evaluators`` (default: the matrix's metrics), with win rates.

    Rows whose every cell is ``n/a`` (an explainer that needs a capability the row lacks)
    are left out.
    """
    columns = score_columns(view.cfg, view.cfg.metrics if evaluators is None else evaluators)
    rows = view.rows(dataset)
    texts: dict[int, list[str]] = {}
    means: dict[int, dict[str, float]] = defaultdict(dict)
    for i, row in enumerate(rows):
        texts[i] = []
        for ev, score in columns:
            text, values = _cell(view, dataset, row, ev, score, notes)
            texts[i].append(text)
            if values:
                means[i][f"{ev}/{score.name}"] = float(np.mean(values))
    # best in bold among the architectures (controls are context, not contenders)
    for c, (ev, score) in enumerate(columns):
        if score.direction == "none":
            continue
        col = f"{ev}/{score.name}"
        have = {
            i: means[i][col] for i, r in enumerate(rows) if not r.is_control and col in means[i]
        }
        if len(have) >= 1:
            best = max(have.values()) if score.direction == "higher" else min(have.values())
            for i, v in have.items():
                if v == best:
                    texts[i][c] = f"**{texts[i][c]}**"
    keep = [i for i in range(len(rows)) if any(t != "n/a" for t in texts[i])]
    if not keep:
        return ""
    rates = win_rates({j: means[i] for j, i in enumerate(keep)}, columns, [rows[i] for i in keep])
    rates = {keep[j]: r for j, r in rates.items()}
    headers = (
        ["architecture", "seeds"]
        + [f"{s.name} {s.arrow}".strip() for _, s in columns]
        + ["win rate ↑"]
    )
    table = []
    for i, row in enumerate(rows):
        if i not in keep:
            continue
        cells = view.cells(dataset, row, "evaluate")
        seeds = len({t.labels["seed"] for t, rec in cells if rec and rec["status"] == "finished"})
        rate = f"{rates[i]:.2f}" if i in rates else "–"
        table.append([row.label, seeds, *texts[i], rate if not row.is_control else ""])
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def cost_table(view: MatrixView, dataset: str) -> str:
    headers = (
        ["architecture", "device", "steps × batch"]
        + [f"{s.name} ({s.unit}) {s.arrow}" for s in COST_SCORES if s.primary]
        + ["params G / D", "eval s"]
    )
    table = []
    for row in view.rows(dataset):
        if row.reference != "trained":
            continue
        trains = [
            rec
            for _, rec in view.cells(dataset, row, "train")
            if rec and rec["status"] == "finished"
        ]
        if not trains:
            continue
        timings = [rec["timings"] for rec in trains]
        budget = trains[0]["config"]["budget"]
        devices = sorted({(rec.get("env") or {}).get("device", "?") for rec in trains})
        values = []
        for s in COST_SCORES:
            if s.primary:
                vals = [t[s.name] for t in timings if s.name in t]
                values.append(_fmt_cost(float(np.mean(vals)) if vals else None, s.unit))
        params = f"{timings[0].get('params_generator', 0) / 1e6:.2f}M / {timings[0].get('params_discriminator', 0) / 1e6:.2f}M"
        evals = [
            rec["timings"]["evaluate_s"]
            for _, rec in view.cells(dataset, row, "evaluate")
            if rec and rec["status"] == "finished"
        ]
        eval_s = _fmt_cost(float(np.sum(evals)) / max(1, len(trains)), "") if evals else "–"
        table.append(
            [
                row.label,
                "; ".join(devices),
                f"{budget['steps']} × {budget['batch_size']}",
                *values,
                params,
                eval_s,
            ]
        )
    if not table:
        return "_no finished training trials_"
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def legend(view: MatrixView) -> str:
    lines = ["| score | better | unit | meaning |", "|---|---|---|---|"]
    for ev in view.cfg.evaluators:
        cls = evaluator_registry(ev).get(ev)
        for s in cls.scores:
            better = {"higher": "↑ higher", "lower": "↓ lower", "none": "–"}[s.direction]
            if s.ideal is not None:
                better += f" (ideal {s.ideal:g})"
            lines.append(f"| `{s.name}` ({ev}) | {better} | {s.unit or '–'} | {s.meaning} |")
    for s in COST_SCORES:
        better = {"higher": "↑ higher", "lower": "↓ lower", "none": "–"}[s.direction]
        lines.append(f"| `{s.name}` (cost) | {better} | {s.unit or '–'} | {s.meaning} |")
    return "\n".join(lines)


def tidy_rows(view: MatrixView) -> list[dict[str, Any]]:
    """results.csv rows: one per architecture × dataset × seed × score (cost figures included)."""
    out = []
    declared: dict[str, dict[str, Score]] = {}
    for ev in view.cfg.evaluators:
        declared[ev] = {s.name: s for s in evaluator_registry(ev).get(ev).scores}
    cost = {s.name: s for s in COST_SCORES}
    for t in view.trials:
        rec = view.records.get(t.key)
        if rec is None:
            continue
        lab = t.labels
        env = rec.get("env") or {}
        if t.kind == "domain":
            out.extend(_domain_rows(view, t, rec))
            continue
        base = {
            "matrix": view.cfg.name,
            "device_type": view.device_type,
            "device": env.get("device"),
            "dataset": lab["dataset"],
            "architecture": lab["architecture"],
            "reference": lab["reference"],
            "seed": lab["seed"],
            "status": rec["status"],
            "trial_key": t.key,
            "git_commit": env.get("git_commit"),
            "torch": env.get("torch"),
        }
        if t.kind == "evaluate":
            scores = declared[lab["evaluator"]]
            values = rec.get("scores") or {}
            for name, s in scores.items():
                out.append(
                    base
                    | {
                        "evaluator": lab["evaluator"],
                        "score": name,
                        "value": values.get(name, np.nan),
                        "direction": s.direction,
                        "unit": s.unit,
                        "error": rec.get("error"),
                    }
                )
        elif rec["status"] == "finished":
            for name, s in cost.items():
                if name in (rec.get("timings") or {}):
                    out.append(
                        base
                        | {
                            "evaluator": "train",
                            "score": name,
                            "value": rec["timings"][name],
                            "direction": s.direction,
                            "unit": s.unit,
                            "error": None,
                        }
                    )
    return out


def _domain_rows(view: MatrixView, t: Trial, rec: dict) -> list[dict[str, Any]]:
    """results.csv rows of a domain network: its held-out accuracies and R²."""
    env = rec.get("env") or {}
    rows = []
    for name, value in (rec.get("scores") or {}).items():
        rows.append(
            {
                "matrix": view.cfg.name,
                "device_type": view.device_type,
                "device": env.get("device"),
                "dataset": t.labels["dataset"],
                "architecture": "domain network",
                "reference": "",
                "seed": t.labels.get("seed", 0),
                "status": rec["status"],
                "trial_key": t.key,
                "git_commit": env.get("git_commit"),
                "torch": env.get("torch"),
                "evaluator": "domain",
                "score": name,
                "value": value,
                "direction": "higher",
                "unit": "",
                "error": rec.get("error"),
            }
        )
    return rows


def domain_line(view: MatrixView, dataset: str) -> str | None:
    """One sentence on the dataset's domain network, the feature space of fidelity scores."""
    for t in view.trials:
        if t.kind != "domain" or t.labels["dataset"] != dataset:
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            why = (rec or {}).get("error") or "not run"
            return f"Domain network: **failed** ({why})."
        scores = ", ".join(
            f"{k.replace('accuracy_', 'accuracy ').replace('r2_', 'R² ')} {v:.3f}"
            for k, v in rec["scores"].items()
        )
        seconds = (rec.get("timings") or {}).get("train_s", float("nan"))
        return (
            f"Domain network (a small CNN trained by the suite on the real training split, on CPU "
            f"in {seconds:.0f} s; its features are the feature space of the fidelity scores): "
            f"held-out {scores}."
        )
    return None


def _copy_figures(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], str]:
    """Copy sample grids into figures/; returns (dataset, arch, reference, seed) -> relative path."""
    figures = {}
    for t in view.trials:
        if t.kind != "train":
            continue
        lab = t.labels
        rel = (
            Path("figures")
            / view.slug
            / lab["dataset"]
            / f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}.png"
        )
        src = store_artifacts / t.key / SAMPLE_GRID
        dst = out / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        if dst.is_file():
            figures[(lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])] = (
                rel.as_posix()
            )
    return figures


def _copy_explainer_figures(
    view: MatrixView, store_artifacts: Path, out: Path
) -> dict[tuple[str, str, str, int], list[tuple[str, str]]]:
    """Copy the PNGs explainers wrote into figures/; (dataset, arch, reference, seed) -> [(evaluator, path)]."""
    figures: dict[tuple[str, str, str, int], list[tuple[str, str]]] = defaultdict(list)
    for t in view.trials:
        lab = t.labels
        if t.kind != "evaluate" or lab.get("evaluator") not in view.cfg.explainers:
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            continue
        folder = out / "figures" / view.slug / lab["dataset"]
        prefix = f"{lab['architecture']}-{lab['reference']}-seed{lab['seed']}-{lab['evaluator']}-"
        src_dir = store_artifacts / t.key
        if src_dir.is_dir():
            for src in sorted(src_dir.glob("*.png")):
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, folder / (prefix + src.name))
        # copies from an earlier render stay usable when only the bundle is left
        for dst in sorted(folder.glob(prefix + "*.png")) if folder.is_dir() else []:
            key = (lab["dataset"], lab["architecture"], lab["reference"], lab["seed"])
            figures[key].append((lab["evaluator"], dst.relative_to(out).as_posix()))
    return figures


def _budget_words(cfg: MatrixConfig, arch: str) -> str:
    train = cfg.train_for(arch)
    words = f"{train['steps']} steps × batch {train['batch_size']}"
    if cfg.seeds_for(arch) != cfg.seeds:
        words += f", seed{'s' if len(cfg.seeds_for(arch)) > 1 else ''} {', '.join(map(str, cfg.seeds_for(arch)))}"
    return words


def _first_seed_words(cfg: MatrixConfig) -> str:
    firsts = {(cfg.seeds_for(a) or cfg.seeds)[0] for a in cfg.architectures} | {cfg.seeds[0]}
    return f"seed {cfg.seeds[0]}" if len(firsts) == 1 else "first seed of each architecture"


def render_view(view: MatrixView, out: Path, artifacts: Path) -> str:
    cfg = view.cfg
    figures = _copy_figures(view, artifacts, out)
    explainer_figures = _copy_explainer_figures(view, artifacts, out)
    parts = [f"## `{cfg.name}` matrix on {view.device_type.upper()}", ""]
    if cfg.description:
        parts += [cfg.description, ""]
    n_done = sum(r["status"] == "finished" for r in view.records.values())
    own = "".join(
        f" ({arch}: {_budget_words(cfg, arch)})"
        for arch in cfg.architectures
        if arch in cfg.train_overrides
    )
    parts += [
        f"Seeds {', '.join(map(str, cfg.seeds))}; budget {cfg.train['steps']} steps × batch {cfg.train['batch_size']}{own}; "
        f"{n_done} of {len(view.trials)} trials finished. Device: {'; '.join(view.devices()) or '?'}. "
        f"Code: {', '.join(c[:12] for c in view.commits())}. Raw records: [`runs/{view.slug}.json`](runs/{view.slug}.json).",
        "",
    ]
    for dataset in cfg.datasets:
        notes: list[str] = []
        parts += [
            f"### {dataset}",
            "",
            "**Sample quality** (mean ± std over seeds; best architecture in bold; "
            "rows in italics are controls, not contenders)",
            "",
            quality_table(view, dataset, notes),
            "",
        ]
        line = domain_line(view, dataset)
        if line:
            parts += [line, ""]
        parts += ["**Cost**", "", cost_table(view, dataset), ""]
        grid = []
        for row in view.rows(dataset):
            if row.reference == "real":
                continue
            seed = (cfg.seeds_for(row.architecture) or cfg.seeds)[0]
            rel = figures.get((dataset, row.architecture, row.reference, seed))
            if rel:
                grid.append(f"| {row.label} | ![{row.label} samples, seed {seed}]({rel}) |")
        if grid:
            parts += [
                f"**Samples** ({_first_seed_words(cfg)}, fixed latents)",
                "",
                "| | |",
                "|---|---|",
                *grid,
                "",
            ]
        explained = quality_table(view, dataset, notes, cfg.explainers) if cfg.explainers else ""
        if explained:
            parts += [
                "**Explanations** (intrinsic explanations and explainer scores; mean ± std over "
                "seeds; architectures an explainer does not apply to are left out)",
                "",
                explained,
                "",
            ]
            shown = []
            for row in view.rows(dataset):
                seed = (cfg.seeds_for(row.architecture) or cfg.seeds)[0]
                for ev, rel in explainer_figures.get(
                    (dataset, row.architecture, row.reference, seed), []
                ):
                    shown.append(f"| {row.label} | {ev} | ![{row.label} {ev}]({rel}) |")
            if shown:
                parts += [
                    f"**Explanation figures** ({_first_seed_words(cfg)})",
                    "",
                    "| | explainer | |",
                    "|---|---|---|",
                    *shown,
                    "",
                ]
        if notes:
            parts += [f"[^{i}]: {note}" for i, note in enumerate(notes, 1)] + [""]
    parts += ["### Legend", "", legend(view), ""]
    return "\n".join(parts)


def write_bundle(view: MatrixView, out: Path) -> Path:
    path = out / "runs" / f"{view.slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = (
        "key",
        "kind",
        "status",
        "config",
        "labels",
        "scores",
        "timings",
        "env",
        "error",
        "started",
        "finished",
    )
    records = [{k: rec.get(k) for k in keep} for _, rec in sorted(view.records.items())]
    bundle = {
        "schema": BUNDLE_SCHEMA,
        "trial_schema": SCHEMA_VERSION,
        "matrix": view.cfg.name,
        "device_type": view.device_type,
        "records": records,
    }
    path.write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def render(store_path: Path, out: Path, configs: list[str] | None = None) -> list[Path]:
    """Render ``out``/README.md, results.csv, figures/ and runs/*.json; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    records = collect_records(store_path, out / "runs")
    if not records:
        raise GanbenchError(
            f"nothing to render: no store at {store_path} and no bundles in {out / 'runs'}; "
            "run `ganbench run smoke` first"
        )
    views = []
    for name in configs or shipped_configs():
        cfg = load_config(name)
        for device_type in DEVICE_TYPES:
            view = MatrixView(cfg, device_type, records)
            if not view.empty:
                views.append(view)
    if not views:
        raise GanbenchError(
            f"no finished trial in {store_path} belongs to the matrices {configs or shipped_configs()}"
        )
    artifacts = store_path.parent / "artifacts"
    body = [
        "# ganbench leaderboard",
        "",
        f"Rendered by `ganbench leaderboard` on {time.strftime('%Y-%m-%d', time.gmtime())} from the project's own runs. "
        "Each matrix and device is shown apart: numbers from different matrices or devices are never averaged "
        "together. `results.csv` holds every number (one row per architecture × dataset × seed × score), "
        "`runs/` the raw trial records this page was rendered from.",
        "",
    ]
    tidy = []
    for view in views:
        body.append(render_view(view, out, artifacts))
        tidy.extend(tidy_rows(view))
    written = []
    readme = out / "README.md"
    readme.write_text("\n".join(body), encoding="utf-8")
    written.append(readme)
    csv_path = out / "results.csv"
    pd.DataFrame(tidy).to_csv(csv_path, index=False)
    written.append(csv_path)
    for view in views:
        written.append(write_bundle(view, out))
    return written
