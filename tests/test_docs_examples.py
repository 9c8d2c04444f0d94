"""The example in docs/own-tensors.md runs, and scores a copying generator as one must."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-tensors.md"


def test_scoring_your_own_tensors_example_runs_and_scores_copies_as_copies():
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    printed: list[dict] = []
    exec(compile(block, str(DOC), "exec"), {"print": printed.append, "__name__": "doc"})
    c2st, mmd, knn, one_nn, memorisation, fidelity = printed
    # the "generator" hands back training images: indistinguishable from held-out ones
    assert 0.4 <= c2st["c2st_accuracy"] <= 0.62 and c2st["c2st_p_value"] > 0.001
    assert knn["knn_c2st_accuracy"] <= 0.6
    assert 0.35 <= one_nn["one_nn_accuracy"] <= 0.65
    assert mmd["mmd2"] < 0.01
    # ... and every one of them is a copy of a training image
    assert memorisation["memorised_fraction"] == 1.0
    assert fidelity["fid"] < 5.0
