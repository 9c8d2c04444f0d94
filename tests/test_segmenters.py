"""Segmenters against ground truth: exact on real shapes, robust to noise; digits; TorchScript."""

from __future__ import annotations

import pytest
import torch

from ganbench.core.errors import ConfigError
from ganbench.core.registry import create_dataset
from ganbench.datasets.segmenters import DigitsSegmenter, TorchScriptSegmenter
from ganbench.datasets.shapes import CONCEPTS, render_shapes


def pixel_iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-concept IoU, intersections and unions summed over all images (as dissection does)."""
    inter = (pred & truth).sum((0, 2, 3)).double()
    union = (pred | truth).sum((0, 2, 3)).double()
    return inter / union


@pytest.mark.parametrize("image_size", [32, 64])
def test_shapes_segmenter_on_held_out_real_shapes(image_size):
    ds = create_dataset("shapes", image_size=image_size, train_size=10, test_size=2000)
    test = ds.split("test")
    seg = ds.segmenter()
    assert seg.concepts == CONCEPTS == ds.spec.concepts
    iou = pixel_iou(seg.segment(test.images), test.extras["masks"])
    assert (iou >= 0.9).all(), dict(zip(CONCEPTS, iou.tolist(), strict=True))
    assert (iou == 1.0).all()  # rule-based and hard-edged: exact, measured on every concept


def test_shapes_segmenter_tolerates_pixel_noise():
    """Generated images are not exact palette colours: Gaussian noise of std 0.1 (in [-1, 1])."""
    d = render_shapes(1500, 32, seed=11)
    g = torch.Generator().manual_seed(0)
    noisy = d["images"] + 0.1 * torch.randn(d["images"].shape, generator=g)
    seg = create_dataset("shapes").segmenter()
    iou = pixel_iou(seg.segment(noisy), d["masks"])
    assert (iou >= 0.95).all(), dict(zip(CONCEPTS, iou.tolist(), strict=True))


def test_shapes_segmenter_finds_nothing_on_uniform_background():
    seg = create_dataset("shapes").segmenter()
    grey = torch.zeros(4, 3, 32, 32)  # mid grey = the grey background
    m = seg(grey)
    assert m[:, 0].all() and not m[:, 1:].any()


def test_digits_masks_and_segmenter():
    ds = create_dataset("digits")
    train = ds.split("train")
    masks = train.extras["masks"]
    assert ds.spec.concepts == ("background", "stroke")
    assert torch.equal(masks[:, 1], train.images[:, 0] > 0)
    assert torch.equal(masks[:, 0], ~masks[:, 1])
    stroke_fraction = masks[:, 1].float().mean().item()
    assert 0.1 < stroke_fraction < 0.5  # digits are mostly background, with real strokes


def test_digits_per_class_strokes_follow_the_classifier():
    class ByMeanInk:  # a stand-in classifier with a known rule, to check the wiring
        def classify(self, x):
            return (x.mean((1, 2, 3)) > -0.5).long() * 7

    seg = DigitsSegmenter(classifier=ByMeanInk())
    assert seg.concepts[:2] == ("background", "stroke") and len(seg.concepts) == 12
    images = create_dataset("digits").split("test").images[:50]
    m = seg(images)
    label = ByMeanInk().classify(images)
    for k in range(10):
        on = m[:, 2 + k].flatten(1).any(1)
        assert torch.equal(on, (label == k) & m[:, 1].flatten(1).any(1))
    assert torch.equal(m[:, 2:].sum(1), m[:, 1].long())  # each stroke pixel has one class


class _LabelSegmenter(torch.nn.Module):
    """Label 1 where the red channel is bright, 0 elsewhere; 5 (unknown) at the top-left pixel."""

    def __init__(self):
        super().__init__()
        self.concepts = ["dark", "bright"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x[:, 0] > 0).long()
        out[:, 0, 0] = 5
        return out


class _ScoreSegmenter(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(x[:, :1] * 10)
        return torch.nn.functional.avg_pool2d(torch.cat([p, 1 - p], 1), 2)  # half resolution


def test_torchscript_segmenter_label_and_score_outputs(tmp_path):
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    path = tmp_path / "labels.pt"
    torch.jit.save(torch.jit.script(_LabelSegmenter()), str(path))
    seg = TorchScriptSegmenter(path)
    assert seg.concepts == ("dark", "bright")
    m = seg(x)
    assert m.shape == (3, 2, 16, 16) and m.dtype == torch.bool
    assert torch.equal(m[:, 1, 1:, 1:], x[:, 0, 1:, 1:] > 0)
    assert not m[:, :, 0, 0].any()  # an unknown label marks no concept

    path2 = tmp_path / "scores.pt"
    torch.jit.save(torch.jit.script(_ScoreSegmenter()), str(path2))
    seg2 = TorchScriptSegmenter(path2, ("bright", "dark"))
    m2 = seg2(x)
    assert m2.shape == (3, 2, 16, 16)  # resized to the images
    assert torch.equal(m2[:, 0], ~m2[:, 1]) or (m2[:, 0] != m2[:, 1]).float().mean() > 0.9


def test_dataset_param_names_a_torchscript_segmenter(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(root / f"{i}.png")
    path = tmp_path / "labels.pt"
    torch.jit.save(torch.jit.script(_LabelSegmenter()), str(path))
    ds = create_dataset(
        "imagefolder",
        root=str(root),
        image_size=16,
        segmenter=str(path),
        segmenter_concepts=["a", "b"],
    )
    assert ds.spec.has_segmenter and ds.spec.concepts == ("a", "b")
    assert "segmenter" in ds.spec.features
    assert ds.segmenter().concepts == ("a", "b")


def test_torchscript_segmenter_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as e:
        TorchScriptSegmenter(tmp_path / "nope.pt")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ConfigError, match="is not a TorchScript module") as e:
        TorchScriptSegmenter(bad)
    assert "\n" not in str(e.value)
    nameless = tmp_path / "nameless.pt"
    torch.jit.save(torch.jit.script(_ScoreSegmenter()), str(nameless))
    with pytest.raises(ConfigError, match="name the concepts"):
        TorchScriptSegmenter(nameless)
    wrong = TorchScriptSegmenter(nameless, ("a", "b", "c"))
    with pytest.raises(ConfigError, match=r"expected integer labels \(N, H, W\) or scores"):
        wrong(torch.zeros(1, 3, 8, 8))
