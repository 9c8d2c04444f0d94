"""COCO-GAN's seam score: exact on images with known steps, n/a without coordinates, and run
on COCO-GAN itself."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganbench.core.errors import ConfigError
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_architecture, create_dataset, get_explainer
from ganbench.explainers.seams import SeamExplainer, seam_ratio
from tests.conftest import eval_context


def ramp(n: int = 3, size: int = 32) -> torch.Tensor:
    """A horizontal ramp plus a vertical one: every step is 0.01, borders and inside alike."""
    j = torch.arange(size, dtype=torch.float32)
    img = (j.view(1, -1) + j.view(-1, 1)) * 0.01 - 0.3
    return img.expand(n, 1, size, size).clone()


def test_seamless_image_scores_one():
    out = seam_ratio(ramp(), micro=8)
    assert out["ratio"] == pytest.approx(1.0, abs=1e-6)


def test_tiled_image_scores_its_known_excess():
    x = ramp()
    # offset every micro patch of 8 px by +0.05 per tile column: each column border adds
    # 0.05 to the 0.01 horizontal step; rows are unchanged
    tiles = (torch.arange(32) // 8).float() * 0.05
    x = x + tiles.view(1, 1, 1, -1)
    out = seam_ratio(x, micro=8)
    # borders: 3 of 31 column steps per row are 0.06, all 31 row-border steps stay 0.01
    n_col = 32 * 3  # per image: 32 rows x 3 column borders
    n_row = 3 * 32
    border = (n_col * 0.06 + n_row * 0.01) / (n_col + n_row)
    assert out["border_step"] == pytest.approx(border, rel=1e-4)
    assert out["interior_step"] == pytest.approx(0.01, rel=1e-4)
    assert out["ratio"] == pytest.approx(border / 0.01, rel=1e-4)


def test_needs_coordinates():
    digits = create_dataset("digits")
    reason = get_explainer("seams").not_applicable_reason(
        frozenset({"layers"}), digits.spec.features, "dcgan"
    )
    assert reason and "coordinates" in reason


def test_n_below_one_fails_when_the_explainer_is_made():
    with pytest.raises(ConfigError, match="n must be >= 1, got 0"):
        SeamExplainer(n=0)


def test_runs_on_cocogan_with_a_figure(tmp_path):
    digits = create_dataset("digits")
    torch.manual_seed(0)
    model = create_architecture("cocogan", digits.spec, width=4).eval()
    scores = evaluate_and_write(SeamExplainer(n=16), eval_context(model, digits, tmp_path))
    assert set(scores) == {"seam_ratio", "seam_ratio_real"}
    assert all(math.isfinite(v) and v > 0 for v in scores.values())
    report = json.loads((tmp_path / "seams.json").read_text())
    assert report["grid"] == 4 and report["micro_patch"] == 8
    assert (tmp_path / "seams.png").is_file()
