"""Bad plugins never crash the matrix run of the others: a plugin that fails to import, one
whose losses turn NaN and one with the wrong output shape each fail their own cells, with a
clear line, while every other cell runs and is stored."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

from tests.conftest import TINY

PLUGINS = {
    "broken.py": """
        import torch
        from ganbench.core.registry import register_architecture
        raise RuntimeError("this plugin cannot be imported")
    """,
    "nangan.py": """
        import torch
        from ganbench.architectures.dcgan import DCGAN
        from ganbench.core.registry import register_architecture

        @register_architecture("nangan")
        class NaNGAN(DCGAN):
            def train_step(self, real):
                losses = super().train_step(real)
                return losses | {"loss_g": torch.tensor(float("nan"))}
    """,
    "shapegan.py": """
        import torch.nn.functional as F
        from ganbench.architectures.dcgan import DCGAN
        from ganbench.core.registry import register_architecture

        @register_architecture("shapegan")
        class ShapeGAN(DCGAN):
            def generate(self, z):
                return F.avg_pool2d(super().generate(z), 2)  # 16x16 instead of 32x32
    """,
}


def test_bad_plugins_fail_their_own_cells_and_the_rest_runs(tmp_path):
    paths = []
    for name, code in PLUGINS.items():
        (tmp_path / name).write_text(textwrap.dedent(code))
        paths += ["--plugin", str(tmp_path / name)]
    config = tmp_path / "tiny.toml"
    config.write_text(
        TINY.replace(
            'architectures = ["dcgan"]',
            'architectures = ["dcgan", "nangan", "shapegan", "brokengan"]',
        )
        + "\n[architecture.shapegan]\nwidth = 8\nlatent_dim = 16\n"
        + "\n[architecture.brokengan]\nwidth = 8\n"
    )
    store = tmp_path / "runs" / "ganbench.sqlite"
    out = subprocess.run(
        [sys.executable, "-m", "ganbench.cli", "run", str(config), "--store", str(store), "--quiet"]
        + paths,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=600,
    )
    # the import error: one warning line naming the file, the error and the line
    warning = [line for line in out.stderr.splitlines() if "broken.py" in line]
    assert len(warning) == 1, out.stderr
    assert "failed to import: RuntimeError: this plugin cannot be imported (line 4)" in warning[0]
    assert "failed: architecture brokengan (not run)" in out.stdout

    rows = (
        sqlite3.connect(store)
        .execute("SELECT json_extract(labels, '$.architecture'), kind, status, error FROM trials")
        .fetchall()
    )
    by = {}
    for arch, kind, status, error in rows:
        by.setdefault((arch, kind), []).append((status, error or ""))
    assert all(s == "finished" for s, _ in by[("dcgan", "train")] + by[("dcgan", "evaluate")])
    assert by[("nangan", "train")][0][0] == "failed"
    assert "loss loss_g became non-finite" in by[("nangan", "train")][0][1]
    assert all(s == "failed" and "its train trial" in e for s, e in by[("nangan", "evaluate")])
    assert by[("shapegan", "train")][0][0] == "finished"
    assert all(s == "failed" for s, _ in by[("shapegan", "evaluate")])
    assert not any(arch == "brokengan" for arch, *_ in rows)
    # exit code: the failed cells (nangan's 3, shapegan's 2) and the architecture not run
    assert out.returncode == 3 + 2 + 1, out.stdout + out.stderr
