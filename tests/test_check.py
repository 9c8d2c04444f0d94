"""``ganbench check``: the template passes, and bad plugins fail the check that names their
fault, with its fix, while the other checks still run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

BAD = """
import torch
from torch import nn

from ganbench.architectures.dcgan import DCGAN
from ganbench.architectures.sagan import SAGAN
from ganbench.core.registry import register_architecture


@register_architecture("wrongshape")
class WrongShape(DCGAN):
    def generate(self, z):
        return super().generate(z)[:, :, :16, :16]


@register_architecture("nanloss")
class NaNLoss(DCGAN):
    def train_step(self, real):
        return super().train_step(real) | {"loss_g": torch.tensor(float("nan"))}


class ReusedReLU(nn.Module):
    def __init__(self, channels, image_size):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 4, 2, 1)
        self.conv2 = nn.Conv2d(8, 8, 4, 2, 1)
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Conv2d(8, 1, image_size // 4)

    def forward(self, x):
        return self.head(self.act(self.conv2(self.act(self.conv1(x))))).reshape(x.shape[0])


@register_architecture("reusedrelu")
class ReusedReLUGAN(DCGAN):
    def build(self):
        super().build()
        self.discriminator = ReusedReLU(self.channels, self.image_size)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4)


@register_architecture("raises")
class Raises(DCGAN):
    def generator_layers(self):
        raise KeyError("no such block")


@register_architecture("uniformprior")
class UniformPrior(DCGAN):
    def sample_latent(self, n, generator=None):  # U(-1, 1), but no latent_from_normal
        return torch.rand(n, self.latent_dim, generator=generator) * 2 - 1


@register_architecture("badattention")
class BadAttention(SAGAN):
    def attention_maps(self, z, images=None):
        maps = super().attention_maps(z, images)
        return {k: v * 2 for k, v in maps.items()}  # no longer sums to 1 over the keys
"""


def ganbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=300,
    )


def _sections(stdout: str) -> dict[str, str]:
    """The output's table per checked architecture."""
    parts = stdout.split("ganbench check ")[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


def _row(section: str, check: str) -> str:
    return next(line for line in section.splitlines() if line.startswith(check + "  "))


def test_the_template_passes_check_as_written(tmp_path):
    out = ganbench("new-architecture", "my-gan", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "my_gan.py"
    assert "class MyGan(Architecture)" in path.read_text()
    out = ganbench("check", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("9 passed, 0 failed")
    again = ganbench("new-architecture", "my-gan", cwd=tmp_path)
    assert (
        again.returncode == 2 and "exists" in again.stderr and len(again.stderr.splitlines()) == 1
    )


def test_bad_plugins_fail_the_check_that_names_their_fault(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(BAD))
    out = ganbench("check", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    sections = _sections(out.stdout)
    assert set(sections) == {
        "wrongshape",
        "nanloss",
        "reusedrelu",
        "raises",
        "badattention",
        "uniformprior",
    }
    expected = {
        "wrongshape": ("generate", "generate gave shape (5, 1, 16, 16), expected (5, 1, 32, 32)"),
        "nanloss": ("training", "loss 'loss_g' is nan at step 1"),
        "reusedrelu": (
            "discriminator modules",
            "modules called more than once in one forward: act",
        ),
        "badattention": ("capability attention", "attention weights sum to 2"),
        "uniformprior": ("latent prior", "differ from sample_latent's (KS distance"),
        # an exception is that check's failure, with the plugin's line it came from
        "raises": ("layers", "KeyError: 'no such block' (bad.py:"),
    }
    for name, (check, found) in expected.items():
        row = _row(sections[name], check)
        assert "FAIL" in row and found in row, row
        assert "fix" in sections[name].splitlines()[1]
        # the fix is printed on the failing row, and the other checks still ran and passed
        assert any(word in row for word in ("must", "give", "provide", "end G")), row
        passed = [line for line in sections[name].splitlines() if "  pass  " in line]
        assert len(passed) >= 6, sections[name]
    # exactly the faulty checks fail; a module reused in D also breaks DeepLIFT
    failing = {
        name: {line.split("  ")[0] for line in section.splitlines() if "  FAIL  " in line}
        for name, section in sections.items()
    }
    assert failing == {
        "wrongshape": {"generate"},
        "nanloss": {"training"},
        "reusedrelu": {"discriminator modules", "captum deeplift"},
        "raises": {"layers"},
        "badattention": {"capability attention"},
        "uniformprior": {"latent prior"},
    }, failing
    assert out.stdout.strip().splitlines()[-1].endswith("failed")


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import torch\nraise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here (line 2)"),
        ("def broken(:\n    pass\n", "SyntaxError"),
    ],
)
def test_a_plugin_that_fails_to_import_is_one_clear_line(tmp_path, code, needle):
    path = tmp_path / "broken.py"
    path.write_text(code)
    out = ganbench("check", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and needle in lines[0], out.stderr


def test_an_unknown_name_is_one_clear_line():
    out = ganbench("check", "dcgna")
    assert out.returncode == 2
    assert "unknown architecture 'dcgna'; did you mean 'dcgan'?" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
