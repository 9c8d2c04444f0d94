"""The leaderboard: tables from declarations, tidy CSV, bundles that re-render without the store."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ganbench.architectures.dcgan import DCGAN
from ganbench.board.cost_tables import COST_SCORES
from ganbench.board.leaderboard import render
from ganbench.core.registry import get_metric
from ganbench.run.bundles import read_bundle
from ganbench.run.config_load import load_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store


class BrokenGAN(DCGAN):
    def train_step(self, real):
        raise RuntimeError("exploded on purpose")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A tiny matrix with two seeds, both controls, and one architecture that always fails."""
    from ganbench.core.registry import ARCHITECTURES
    from tests.conftest import TINY, registered

    root = tmp_path_factory.mktemp("lb")
    text = (
        TINY.replace("seeds = [0]", "seeds = [0, 1]")
        .replace("references = []", 'references = ["untrained", "real"]')
        .replace('architectures = ["dcgan"]', 'architectures = ["dcgan", "brokengan"]')
    )
    config = root / "tiny.toml"
    config.write_text(text + "\n[architecture.brokengan]\nwidth = 8\n")
    with registered(ARCHITECTURES, "brokengan", BrokenGAN):
        store = Store(root / "runs" / "ganbench.sqlite")
        run_matrix(load_config(str(config)), store, device="cpu", quiet=True, in_process=True)
        render(store.path, root / "leaderboard", configs=[str(config)])
        readme = (root / "leaderboard" / "README.md").read_text()
        csv = pd.read_csv(root / "leaderboard" / "results.csv")
        # re-render from the bundle alone, without the store
        shutil.rmtree(root / "runs")
        render(root / "runs" / "ganbench.sqlite", root / "leaderboard", configs=[str(config)])
        csv_again = pd.read_csv(root / "leaderboard" / "results.csv")
    return root, readme, csv, csv_again


def test_quality_table_has_arrows_seeds_controls_and_bold_best(rendered):
    _, readme, _, _ = rendered
    assert "| architecture" in readme and "c2st_jsd ↓" in readme and "mmd2 ↓" in readme
    assert "*dcgan (untrained)*" in readme and "*real data (reference)*" in readme
    dcgan_rows = [line for line in readme.splitlines() if line.startswith("| dcgan ")]
    assert "| 2 " in dcgan_rows[0]  # two seeds
    assert any("**" in row for row in dcgan_rows) and any(" ± " in row for row in dcgan_rows)


def test_failed_cells_show_the_error(rendered):
    _, readme, csv, _ = rendered
    broken = next(line for line in readme.splitlines() if line.startswith("| brokengan "))
    assert "failed[^" in broken
    assert "exploded on purpose" in readme
    trained = csv[(csv.architecture == "brokengan") & (csv.reference == "trained")]
    assert set(trained.status) == {"failed"}
    # its untrained control never calls train_step, so it finishes and is scored
    untrained = csv[(csv.architecture == "brokengan") & (csv.reference == "untrained")]
    assert set(untrained.status) == {"finished"}


def test_legend_comes_from_the_score_declarations(rendered):
    _, readme, _, _ = rendered
    for metric in ("c2st", "mmd"):
        for score in get_metric(metric).scores:
            assert f"`{score.name}` ({metric})" in readme and score.meaning in readme
    for score in COST_SCORES:
        assert score.meaning in readme


def test_cost_table_and_sample_grids(rendered):
    root, readme, _, _ = rendered
    assert "**Cost**" in readme and "s_per_step_median" in readme and "CPU (" in readme
    grid = root / "leaderboard" / "figures" / "tiny-cpu" / "digits" / "dcgan-trained-seed0.png"
    assert grid.is_file() and grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "figures/tiny-cpu/digits/dcgan-trained-seed0.png" in readme


def test_results_csv_is_tidy_and_numeric(rendered):
    _, _, csv, _ = rendered
    assert {
        "architecture",
        "dataset",
        "seed",
        "evaluator",
        "score",
        "value",
        "direction",
        "unit",
    } <= set(csv.columns)
    assert pd.api.types.is_float_dtype(csv["value"])
    finished = csv[
        (csv.status == "finished") & (csv.evaluator == "c2st") & (csv.score == "c2st_accuracy")
    ]
    assert len(finished) == 2 * 4  # 2 seeds x (dcgan, dcgan untrained, brokengan untrained, real)
    assert finished.value.between(0, 1).all()
    assert not csv.duplicated(
        [
            "matrix",
            "device_type",
            "dataset",
            "architecture",
            "reference",
            "seed",
            "evaluator",
            "score",
        ]
    ).any()


def test_bundles_rerender_the_same_numbers_without_the_store(rendered):
    root, _, csv, csv_again = rendered
    assert (root / "leaderboard" / "runs" / "tiny-cpu.json").is_file()
    pd.testing.assert_frame_equal(csv, csv_again)


def test_page_marks_failures_with_their_error(rendered):
    root, *_ = rendered
    html = (root / "leaderboard" / "index.html").read_text()
    import re

    cell = re.search(r'<td class=" failed"\s+data-sort="" title="([^"]+)">failed</td>', html)
    assert cell and "RuntimeError: exploded on purpose" in cell.group(1)
    assert re.search(
        r"<li>failed — brokengan: its train trial \w+ failed: RuntimeError: exploded", html
    )


def test_explainability_table_sits_beside_its_control_and_is_ranked(tiny_board):
    readme = (tiny_board / "README.md").read_text()
    digits = readme.split("### digits")[1].split("### shapes")[0]
    table = digits.split("**Explainability**")[1].split("**Trade-offs**")[0]
    assert "logit_gap ↑" in table and "(control " in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:3]] == ["dcgan", "dcgan-wide"]
    # the real data has no discriminator: its row is n/a throughout and left out
    assert "real data" not in table
    ranking = digits.split("**Ranking**")[1].split("**Cost**")[0]
    assert "quality win rate ↑" in ranking and "explainability win rate ↑" in ranking
    for name in ("tradeoff-quality-cost.png", "tradeoff-quality-explainability.png"):
        png = tiny_board / "figures" / "tiny-cpu" / "digits" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and name in digits


def test_page_is_offline_with_every_figure_beside_it(tiny_board):
    import re

    html = (tiny_board / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not fetch"
    # every figure the page shows is a file next to it
    for rel in re.findall(r'<img src="([^"]+)"', html):
        assert (tiny_board / rel).is_file(), rel
    assert html.count('<section class="lb-section"') == 2
    assert 'option value="tiny-cpu-shapes"' in html
    # sentences shared with README.md render their markdown: no backtick is left as text
    assert "`" not in re.sub(r"<script.*?</script>", "", html, flags=re.S)


def test_shared_markdown_sentences_are_escaped_then_rendered():
    from ganbench.board.html import inline_markdown

    assert str(inline_markdown("run `a<b>` for **x** & y")) == (
        "run <code>a&lt;b&gt;</code> for <strong>x</strong> &amp; y"
    )


def test_cost_table_marks_timings_taken_on_a_shared_cpu(rendered, tmp_path):
    """A train record whose loop got under 3/4 of its threads' time is marked contended."""
    import json

    root, _, _, _ = rendered
    out = tmp_path / "leaderboard"
    shutil.copytree(root / "leaderboard", out)
    bundle_path = out / "runs" / "tiny-cpu.json"
    bundle = json.loads(bundle_path.read_text())
    trains = [
        r
        for r in bundle["records"]
        if r["kind"] == "train"
        and r["labels"]["architecture"] == "dcgan"
        and r["labels"]["reference"] == "trained"
    ]
    for rec in trains:
        rec["timings"]["cpu_share"] = 0.95
    trains[0]["timings"]["cpu_share"] = 0.41
    bundle_path.write_text(json.dumps(bundle))
    from ganbench.core.registry import ARCHITECTURES
    from tests.conftest import registered

    with registered(ARCHITECTURES, "brokengan", BrokenGAN):
        render(tmp_path / "no-store.sqlite", out, configs=[str(root / "tiny.toml")])
    text = (out / "README.md").read_text()
    cost = text[text.index("**Cost**") :]
    dcgan = next(line for line in cost.splitlines() if line.startswith("| dcgan "))
    assert "(contended)" in dcgan
    page = (out / "index.html").read_text()
    assert "1 of 2 seeds trained while other jobs shared the CPU" in page and "41%" in page


def test_a_store_that_shares_a_few_keys_leaves_the_committed_bundle_alone(rendered, tmp_path):
    """Trials are shared by key across matrices (the quick look's untrained controls are the
    smoke matrix's): a store that ran a few of a matrix's keys for another matrix must not lay
    its records over the committed bundle; a whole run of the matrix replaces them."""
    import json

    from ganbench.core.registry import ARCHITECTURES
    from tests.conftest import registered

    root, *_ = rendered
    out = tmp_path / "leaderboard"
    shutil.copytree(root / "leaderboard", out)
    tiny = root / "tiny.toml"
    other = tmp_path / "other.toml"
    other.write_text(
        tiny.read_text()
        .replace('name = "tiny"', 'name = "other"\nquick_look = true')
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace('architectures = ["dcgan", "brokengan"]', 'architectures = ["dcgan"]')
        .replace('references = ["untrained", "real"]', 'references = ["untrained"]')
        .replace("[architecture.brokengan]\nwidth = 8\n", "")
    )
    committed = (out / "runs" / "tiny-cpu.json").read_bytes()
    store = Store(tmp_path / "runs" / "ganbench.sqlite")
    with registered(ARCHITECTURES, "brokengan", BrokenGAN):
        run_matrix(load_config(str(other)), store, device="cpu", quiet=True, in_process=True)
        shared = {r.key for r in store.records()} & {
            r["key"] for r in json.loads(committed)["records"]
        }
        assert len(shared) >= 4  # dcgan seed 0, trained and untrained, and their evaluations
        render(store.path, out, configs=[str(other), str(tiny)])
        assert (out / "runs" / "tiny-cpu.json").read_bytes() == committed
        assert (out / "runs" / "other-cpu.json").is_file()
    # a quick look comes after the matrices whose numbers are for citing, and says what it is
    readme = (out / "README.md").read_text()
    assert readme.index("## `tiny` matrix") < readme.index(
        "## `other` matrix on CPU: a quick look, not numbers to cite"
    )
    assert "**other · CPU · digits (quick look)**" in readme
    with registered(ARCHITECTURES, "brokengan", BrokenGAN):
        # a whole run of the tiny matrix on this store: its records are the ones written now
        run_matrix(load_config(str(tiny)), store, device="cpu", quiet=True, in_process=True)
        render(store.path, out, configs=[str(tiny), str(other)])
    started = {r.key: r.started for r in store.records()}
    rewritten = read_bundle(out / "runs" / "tiny-cpu.json")["records"]
    assert rewritten and all(r["started"] == started[r["key"]] for r in rewritten)


def test_committed_finished_and_na_records_stay_until_a_whole_run_replaces_them():
    from types import SimpleNamespace

    from ganbench.board.sources import keep_committed

    own = [SimpleNamespace(key=k) for k in ("a", "b", "c", "d")]
    bundled = {
        "a": {"status": "finished", "origin": "bundle", "run": "committed"},
        "b": {"status": "n/a", "origin": "bundle", "run": "committed"},
        "c": {"status": "failed", "origin": "bundle", "run": "committed"},
    }
    store = {
        k: {"status": "finished" if k != "b" else "n/a", "origin": "store", "run": "local"}
        for k in "abc"
    }
    kept = keep_committed(own, bundled | store, bundled)  # the store lacks d: not a whole run
    assert {k: r["run"] for k, r in kept.items()} == {
        "a": "committed",
        "b": "committed",
        "c": "local",
    }
    whole = store | {"d": {"status": "finished", "origin": "store", "run": "local"}}
    assert {r["run"] for r in keep_committed(own, bundled | whole, bundled).values()} == {"local"}


def test_commits_from_a_dirty_work_tree_stay_marked_in_every_table(rendered, tmp_path):
    """A record made with uncommitted changes reads `<sha>-dirty` in the header and provenance."""
    import json

    from ganbench.board.view import short_commit

    assert short_commit("0123456789abcdef0123-dirty") == "0123456789ab-dirty"
    assert short_commit("0123456789abcdef0123") == "0123456789ab"
    assert short_commit(None) == "unknown"
    root, _, _, _ = rendered
    out = tmp_path / "leaderboard"
    shutil.copytree(root / "leaderboard", out)
    bundle_path = out / "runs" / "tiny-cpu.json"
    bundle = read_bundle(bundle_path)  # each record's env a dict again (envs stored once)
    for rec in bundle["records"]:
        if rec["labels"].get("architecture") == "dcgan" and rec.get("env"):
            rec["env"]["git_commit"] = "feedfacecafe0123456789-dirty"
    bundle_path.write_text(json.dumps(bundle))
    from ganbench.core.registry import ARCHITECTURES
    from tests.conftest import registered

    with registered(ARCHITECTURES, "brokengan", BrokenGAN):
        render(tmp_path / "no-store.sqlite", out, configs=[str(root / "tiny.toml")])
    text = (out / "README.md").read_text()
    assert "feedfacecafe-dirty" in text.split("Raw records")[0]  # the header's Code: line
    page = (out / "index.html").read_text()
    start = page.index('data-table="provenance"')
    provenance = page[start : page.index("</table>", start)]
    assert "feedfacecafe-dirty" in provenance


def _md_table(block: str) -> list[list[str]]:
    """The cells of a README table's rows, header first (italics and bold stripped)."""
    return [
        [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        for line in block.splitlines()
        if line.startswith("| ") and not line.startswith("|--")
    ]


def _md_rows(block: str) -> dict[str, list[str]]:
    """The cells of a README table's rows by their first cell."""
    return {cells[0]: cells for cells in _md_table(block)}


def test_summary_opens_the_readme_and_matches_the_tables(tiny_board):
    readme = (tiny_board / "README.md").read_text()
    summary = readme.split("## Summary")[1].split("## `tiny` matrix")[0]
    digits = readme.split("### digits")[1].split("### shapes")[0]
    # the same lines open the dataset's section
    lines = [
        line
        for line in summary.split("**tiny · CPU · digits**")[1]
        .split("**tiny · CPU · shapes**")[0]
        .splitlines()
        if line.startswith("- ")
    ]
    assert lines and all(line in digits for line in lines)
    best = next(line for line in lines if "Best sample quality" in line)
    ranking = _md_table(digits.split("**Ranking**")[1].split("**Metric validity**")[0])[1:]
    firsts = [row[1] for row in ranking if row[0].split(" ")[0].split("–")[0] == "1"]
    assert firsts, ranking
    if len(firsts) == 1:
        assert f"**Best sample quality: {firsts[0]}**" in best
    else:
        assert "a tie between" in best and all(a in best for a in firsts)
    # the distance it quotes is the number in the quality table
    far = next(line for line in lines if line.startswith("- **How far from real:**"))
    name = far.split("`")[1]
    arch = far.split("**How far from real:** ")[1].split("'s `")[0]
    # the README table chunk (wide tables are split by columns) holding that column
    chunk = next(
        _md_table(b)
        for b in digits.split("\n\n")
        if b.startswith("| architecture") and f"{name} ↓" in b.splitlines()[0]
    )
    col = chunk[0].index(f"{name} ↓")
    rows = {cells[0]: cells for cells in chunk}
    assert f"`{name}` is {rows[arch][col]} against {rows['real data (reference)'][col]}" in far
    cost = next(line for line in lines if line.startswith("- **Cost:**"))
    assert "ms/step" in cost


def test_readme_tables_fit_a_forge_page(tiny_board):
    """No README table line is wider than README_WIDTH: the tiny board's, and the committed
    board's (rendered by the same code)."""
    from pathlib import Path

    from ganbench.board.markdown import README_WIDTH

    committed = Path(__file__).resolve().parents[1] / "leaderboard" / "README.md"
    for path in (tiny_board / "README.md", committed):
        wide = [
            line
            for line in path.read_text().splitlines()
            if line.startswith("|") and len(line) > README_WIDTH
        ]
        assert not wide, f"{path}: {wide[0][:200]}"


def test_trial_counts_are_words_not_a_fraction(tiny_board):
    readme = (tiny_board / "README.md").read_text()
    head = readme.split("## `tiny` matrix")[1].split("###")[0]
    assert " trials: " in head and " finished, " in head and " n/a by design" in head
    assert " failed" in head and " of " not in head.split(" trials: ")[1].split(".")[0]


def test_columns_that_carry_nothing_are_left_out_with_a_note():
    from ganbench.board.tables import Cell, Column, Table, TableRow, drop_uninformative
    from ganbench.core.scores import Score

    def col(name):
        return Column(name, "ev", Score(name, "higher", name))

    table = Table(
        [Column("architecture", numeric=False), col("same"), col("na"), col("useful"), col("one")],
        [
            TableRow(
                "a",
                False,
                [
                    Cell("a"),
                    Cell("0.000", 0.0),
                    Cell("n/a", None, "needs X", status="n/a"),
                    Cell("0.1", 0.1),
                    Cell("1.0", 1.0),
                ],
            ),
            TableRow(
                "b",
                False,
                [
                    Cell("b"),
                    Cell("0.000", 0.0),
                    Cell("n/a", None, "needs X", status="n/a"),
                    Cell("0.2", 0.2),
                    Cell("–"),
                ],
            ),
            TableRow(
                "c (untrained)",
                True,
                [
                    Cell("c"),
                    Cell("0.000", 0.0),
                    Cell("n/a", None, "needs X", status="n/a"),
                    Cell("0.3", 0.3),
                    Cell("2.0", 2.0),
                ],
            ),
        ],
    )
    kept, dropped = drop_uninformative(table, min_rows=2)
    assert [c.header for c in kept.columns] == ["architecture", "useful"]
    assert dropped == [
        "`same` (0.000 in every row)",
        "`na` (n/a in every row: needs X)",
        "`one` (a value for a only)",
    ]
    # a failure always shows, even in a column with nothing else
    table.rows[0].cells[2] = Cell("failed", None, "boom", status="failed")
    kept, _ = drop_uninformative(table, min_rows=2)
    assert "na" in [c.header for c in kept.columns]


def test_bundle_stores_each_environment_once_and_reads_back_whole(rendered, tmp_path):
    """The maintainers' bundle keeps one copy of each trial environment (records point into
    ``envs``); reading it gives every record its env dict back, and a record pointing nowhere
    is refused in one line."""
    import json

    from ganbench.run.bundles import BundleRefused

    root, _, _, _ = rendered
    path = root / "leaderboard" / "runs" / "tiny-cpu.json"
    raw = json.loads(path.read_text())
    assert raw["schema"] == 2 and 1 <= len(raw["envs"]) < len(raw["records"])
    assert all(isinstance(r["env"], int) for r in raw["records"] if r.get("env") is not None)
    whole = read_bundle(path)
    assert "envs" not in whole
    for before, after in zip(raw["records"], whole["records"], strict=True):
        if before.get("env") is not None:
            assert after["env"] == raw["envs"][before["env"]] and "torch" in after["env"]
    raw["records"][0]["env"] = len(raw["envs"])
    bad = tmp_path / "tiny-cpu.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(BundleRefused, match="points to environment"):
        read_bundle(bad)


def test_the_board_says_whether_its_timings_had_the_cpu_to_themselves():
    from types import SimpleNamespace

    from ganbench.board.sentences import contention_words

    def view(*shares):
        own = [SimpleNamespace(kind="train", key=f"k{i}") for i in range(len(shares) + 1)]
        records = {
            f"k{i}": {"status": "finished", "timings": {"steps": 100.0, "cpu_share": s}}
            for i, s in enumerate(shares)
        }
        # an untrained control (0 steps) is not a timed training
        records[f"k{len(shares)}"] = {
            "status": "finished",
            "timings": {"steps": 0.0, "cpu_share": 0.1},
        }
        return SimpleNamespace(own=own, records=records)

    assert contention_words(view(0.97, 0.93)) == (
        "Uncontended: each of the 2 timed trainings had at least 93% of its threads' CPU time"
    )
    words = contention_words(view(0.97, 0.5, 0.6))
    assert words.startswith("2 of 3 timed trainings shared the CPU with other jobs (down to 50%")
    assert contention_words(SimpleNamespace(own=[], records={})) == ""  # nothing timed on a CPU
