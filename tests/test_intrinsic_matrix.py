"""The intrinsic explainers in a matrix: scored where they apply, n/a elsewhere, in their own table."""

from __future__ import annotations

import re

from ganbench.board.leaderboard import render
from ganbench.run.config_load import load_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store
from ganbench.run.trials import expand

MATRIX = """
name = "tinyintrinsic"
seeds = [0]
architectures = ["dcgan", "sagan", "infogan"]
datasets = ["digits"]
metrics = ["mmd"]
explainers = ["codes", "attention"]
references = ["real"]

[train]
steps = 20
batch_size = 32
log_every = 10
grid_size = 16

[architecture.dcgan]
width = 8

[architecture.sagan]
width = 8

[architecture.infogan]
width = 8

[metric.mmd]
n = 64
permutations = 20

[explainer.codes]
n_per_category = 20

[explainer.attention]
n = 16
figure_images = 2
"""


def test_intrinsic_explainers_run_where_they_apply_and_get_their_own_table(tmp_path):
    path = tmp_path / "tinyintrinsic.toml"
    path.write_text(MATRIX)
    cfg = load_config(str(path))
    store = Store(tmp_path / "s.sqlite")
    summary = run_matrix(cfg, store, device="cpu", quiet=True, log=lambda s: None)
    assert not summary.failed, summary.failed
    status = {}
    for t in expand(cfg, "cpu"):
        if t.kind == "evaluate":
            rec = store.get(t.key)
            status[(t.labels["architecture"], t.labels["evaluator"])] = (rec.status, rec.error)
    assert status[("infogan", "codes")][0] == "finished"
    assert status[("sagan", "attention")][0] == "finished"
    for arch, ev in [
        ("dcgan", "codes"),
        ("sagan", "codes"),
        ("dcgan", "attention"),
        ("infogan", "attention"),
    ]:
        state, why = status[(arch, ev)]
        assert state == "n/a" and "needs capability" in why, (arch, ev, why)
    assert status[("real data", "codes")][0] == "n/a"

    render(store_path=store.path, out=tmp_path / "lb", configs=[str(path)])
    page = (tmp_path / "lb" / "README.md").read_text()
    before, explanations = page.split("**Intrinsic explanations**")
    # the intrinsic scores are not quality columns (the validity table lists every score)
    quality = "".join(b.split("\n\n**")[0] for b in before.split("**Sample quality: ")[1:])
    assert quality and "code_accuracy" not in quality and "attn_entropy_g" not in quality
    tables, per_class = explanations.split("**Explanation figures**")[0].split(
        "**Codes per class**"
    )
    # InfoGAN's code values matched to the digit classes, one column per class
    assert "head `label`" in per_class and "| infogan " in per_class
    # one table per intrinsic explainer, each with the architectures it applies to only (dcgan
    # and the real data: every cell n/a, left out)
    parts = re.split(r"\n\*(\w+)\*: ", tables)
    by_explainer = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(by_explainer) == {"codes", "attention"}
    for ev, score, arch in (
        ("codes", "code_accuracy ↑", "infogan"),
        ("attention", "attn_entropy_g", "sagan"),
    ):
        rows = [line for line in by_explainer[ev].splitlines() if line.startswith("| ")]
        assert score in rows[0]
        assert [r.split("|")[1].strip() for r in rows[1:]] == [arch]
    figures = sorted(p.name for p in (tmp_path / "lb" / "figures").rglob("*.png"))
    assert "infogan-trained-seed0-codes-codes-c1.png" in figures
    assert "sagan-trained-seed0-attention-attention.png" in figures
    assert "sagan-trained-seed0-attention-attention.png" in explanations
    # rows that are n/a throughout are left out of the page; results.csv keeps why
    import pandas as pd

    csv = pd.read_csv(tmp_path / "lb" / "results.csv")
    why = csv[(csv.architecture == "infogan") & (csv.evaluator == "attention")].error
    assert (
        len(why) and why.str.startswith("attention needs capability attention, which infogan").all()
    )
    # every n/a cell still on the page says why on hover
    html = (tmp_path / "lb" / "index.html").read_text()
    assert not re.search(r'class=" na"\s+data-sort=""\s*>', html)
