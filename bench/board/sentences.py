"""The sentences and lists a view shows on both pages (README.md and index.html) around its
tables: the budget, the trial counts, whether the timings had the CPU to themselves, which
domain network the fidelity scores read, which seed the figures show, and the legend of
every declared score.
"""

from __future__ import annotations

import json
from pathlib import Path

from ganbench.board.cost_tables import CONTENDED_SHARE, COST_SCORES
from ganbench.board.view import MatrixView, trial_counts
from ganbench.core.registry import evaluator_registry
from ganbench.core.scores import Score
from ganbench.run.config import TRAIN_DEFAULTS, MatrixConfig
from ganbench.run.trials import domain_plan


def _steps_words(train: dict) -> str:
    return f"{train['steps']} steps × batch {train['batch_size']}"


def _budget_words(cfg: MatrixConfig, arch: str) -> str:
    """An architecture's own budget: its steps (per dataset where they differ) and seeds."""
    per = {d: _steps_words(cfg.train_for(arch, d)) for d in cfg.datasets}
    own = cfg.train_overrides.get(arch, {})
    words = []
    if any(k in own for k in ("steps", "batch_size")) or any(d in own for d in cfg.datasets):
        if len(set(per.values())) == 1:
            words.append(next(iter(per.values())))
        else:
            words += [f"{words_} on {d}" for d, words_ in per.items()]
    if cfg.seeds_for(arch) != cfg.seeds:
        many = len(cfg.seeds_for(arch)) > 1
        words.append(f"seed{'s' if many else ''} {', '.join(map(str, cfg.seeds_for(arch)))}")
    return ", ".join(words)


def budget_line(cfg: MatrixConfig) -> str:
    """ "Seeds 0, 1; budget 1500 steps × batch 64 (shapes: ...; stylegan: ...)": the README's
    and the page's."""
    datasets = "".join(
        f" ({d}: {_steps_words(cfg.train | cfg.train_datasets[d])})"
        for d in cfg.datasets
        if d in cfg.train_datasets
    )
    own = "".join(
        f" ({arch}: {_budget_words(cfg, arch)})"
        for arch in cfg.architectures
        if arch in cfg.train_overrides
    )
    numerics = "".join(
        f", {cfg.train[k]}{suffix}"
        for k, suffix in (("precision", ""), ("compile", " compile"))
        if cfg.train[k] != TRAIN_DEFAULTS[k]
    )
    return (
        f"Seeds {', '.join(map(str, cfg.seeds))}; budget {cfg.train['steps']} steps × batch "
        f"{cfg.train['batch_size']}{numerics}{datasets}{own}"
    )


def first_seed_words(cfg: MatrixConfig) -> str:
    """Which seed the figures show: "seed 0", or each architecture's first where they differ."""
    firsts = {(cfg.seeds_for(a) or cfg.seeds)[0] for a in cfg.architectures} | {cfg.seeds[0]}
    return f"seed {cfg.seeds[0]}" if len(firsts) == 1 else "first seed of each architecture"


def trial_words(view: MatrixView) -> str:
    """The maintainers' trials of the matrix by status, in words."""
    c = trial_counts(view)
    words = (
        f"{len(view.own)} trials: {c['finished']} finished, {c['n/a']} n/a by design (an "
        f"evaluator that does not apply to an architecture or dataset), {c['failed']} failed"
    )
    return words + (f", {c['not run']} not run yet" if c["not run"] else "")


def contention_words(view: MatrixView) -> str:
    """Whether the timed trainings had the CPU to themselves (``cpu_share``: the share of its
    threads' time a training loop got), in words; "" where nothing was timed on a CPU."""
    shares = []
    for t in view.own:
        rec = view.records.get(t.key)
        if t.kind == "train" and rec and rec["status"] == "finished":
            share = (rec.get("timings") or {}).get("cpu_share")
            if share is not None and (rec.get("timings") or {}).get("steps"):
                shares.append(share)
    if not shares:
        return ""
    contended = [x for x in shares if x < CONTENDED_SHARE]
    if not contended:
        return (
            f"Uncontended: each of the {len(shares)} timed trainings had at least "
            f"{min(shares):.0%} of its threads' CPU time"
        )
    return (
        f"{len(contended)} of {len(shares)} timed trainings shared the CPU with other jobs "
        f"(down to {min(contended):.0%} of their threads' time; marked contended in the cost "
        "tables), so their timings are slower than an idle machine's"
    )


def _held_out(scores: dict[str, float]) -> str:
    return ", ".join(
        f"{k.replace('accuracy_', 'accuracy ').replace('r2_', 'R² ')} {v:.3f}"
        for k, v in scores.items()
    )


def domain_line(view: MatrixView, dataset: str) -> str | None:
    """One sentence on the dataset's domain network, the feature space of fidelity scores."""
    plan = domain_plan(view.cfg, dataset)
    if plan.directory is not None:
        meta = json.loads((Path(plan.directory) / "domain.json").read_text())
        return (
            f"Domain network (a small CNN trained once on the real training split by `ganbench "
            f"train-domain {dataset}` and shipped with ganbench, weights sha256 "
            f"`{meta['sha256'][:12]}`; every machine scores in its features): held-out "
            f"{_held_out(meta['metrics'])}."
        )
    for t in view.trials:
        if t.kind != "domain" or t.labels["dataset"] != dataset:
            continue
        rec = view.records.get(t.key)
        if not rec or rec["status"] != "finished":
            why = (rec or {}).get("error") or "not run"
            return f"Domain network: **failed** ({why})."
        seconds = (rec.get("timings") or {}).get("train_s", float("nan"))
        sha = ((rec.get("outputs") or {}).get("weights_sha256") or "")[:12]
        return (
            f"Domain network (a small CNN trained by the suite on the real training split, on CPU "
            f"in {seconds:.0f} s, weights sha256 `{sha}`; its features are the feature space of "
            f"the fidelity scores): held-out {_held_out(rec['scores'])}."
        )
    return None


def legend_rows(view: MatrixView) -> list[tuple[str, str, str, str, str]]:
    """(score, evaluator, better, unit, meaning) for every declared score, cost included."""
    out = []
    for ev in view.cfg.evaluators:
        for s in evaluator_registry(ev).get(ev).scores:
            out.append((s.name, ev, _better(s), s.unit or "–", s.meaning))
    for s in COST_SCORES:
        out.append((s.name, "cost", _better(s), s.unit or "–", s.meaning))
    return out


def _better(s: Score) -> str:
    better = {"higher": "↑ higher", "lower": "↓ lower", "none": "–"}[s.direction]
    if s.ideal is not None:
        better += f" (ideal {s.ideal:g})"
    return better
