"""StyleGAN2: demodulation, equalised learning rate, styles, truncation, mixing, EMA, R1."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from ganbench.architectures.stylegan import (
    EqualConv2d,
    EqualLinear,
    MinibatchStd,
    ModulatedConv2d,
    StyleDiscriminator,
    StyleGAN2,
    ToRGB,
    r1_penalty,
)
from ganbench.core.registry import create_architecture
from ganbench.datasets.base import DatasetSpec

GREY32 = DatasetSpec(name="grey32", version="test", image_size=32, channels=1)
RGB64 = DatasetSpec(name="rgb64", version="test", image_size=64, channels=3)


def stylegan(spec: DatasetSpec = GREY32, seed: int = 0, **params) -> StyleGAN2:
    torch.manual_seed(seed)
    return create_architecture("stylegan", spec, **{"width": 8, **params})


def fake_reals(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- modulated convolution ------------------------------------------------------------------
def per_sample_conv(x: torch.Tensor, weights: torch.Tensor, up: bool) -> torch.Tensor:
    """Reference: each sample convolved with its own weights (after bilinear 2x when ``up``)."""
    if up:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return torch.cat([F.conv2d(x[i : i + 1], weights[i], padding=1) for i in range(len(x))])


@pytest.mark.parametrize("up", [False, True], ids=["same", "up"])
def test_demodulation_gives_every_output_channel_unit_norm(up):
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, w_dim=16, resolution=16 if up else 8, up=up)
    # styles over four orders of magnitude, one sample with a near-zero input channel
    styles = torch.randn(4, 6) * torch.tensor([[0.01], [1.0], [10.0], [100.0]])
    styles[1, 2] = 1e-6
    w = layer.modulated_weight(styles)
    assert w.shape == (4, 5, 6, 3, 3)
    norms = w.square().sum(dim=(2, 3, 4)).sqrt()
    torch.testing.assert_close(norms, torch.ones(4, 5), atol=1e-5, rtol=0)
    # and each is the modulated weight s_i * w_ijk, rescaled per (sample, output channel)
    ratio = w / (layer.weight.unsqueeze(0) * styles[:, None, :, None, None])
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1, :1].expand_as(ratio))

    # the convolution (activation scaling, and grouped "fused") uses exactly these weights;
    # upsampling by transposed conv + [1,3,3,1] equals bilinear + conv away from the borders
    x = torch.randn(4, 6, 8, 8)
    expected = per_sample_conv(x, w, up)
    inner = (..., slice(2, -2), slice(2, -2)) if up else (...,)
    for fused in (False, True):
        layer.fused = fused
        with torch.no_grad():
            got = layer.modulated_conv(x, styles)
        assert got.shape == expected.shape
        torch.testing.assert_close(got[inner], expected[inner], atol=1e-4, rtol=1e-4)
    # demodulation makes the layer blind to the scale of its styles
    layer.fused = False
    with torch.no_grad():
        torch.testing.assert_close(
            layer.modulated_conv(x, 7.0 * styles), layer.modulated_conv(x, styles)
        )


def test_every_layer_of_a_network_is_demodulated_under_its_own_styles():
    arch = stylegan().eval()
    with torch.no_grad():
        w = arch.mapping(arch.sample_latent(3, torch.Generator().manual_seed(0)))
        styles = arch.styles(w)
    layers = {
        name: m for name, m in arch.generator_ema.named_modules() if isinstance(m, ModulatedConv2d)
    }
    assert len(layers) == 7  # 4x4: one conv; 8, 16, 32: two each
    for name, layer in layers.items():
        style_name = name.replace("synthesis.blocks.", "").replace("features.convs.", "")
        with torch.no_grad():
            norms = layer.modulated_weight(styles[style_name]).square().sum(dim=(2, 3, 4))
        torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)


def test_torgb_is_modulated_but_not_demodulated():
    torch.manual_seed(0)
    torgb = ToRGB(8, 3, w_dim=16)
    x, w = torch.randn(2, 8, 4, 4), torch.randn(2, 16)
    with torch.no_grad():
        base = torgb(x, w) - torgb.bias[:, None, None]
        torgb.affine.weight.mul_(2)
        torgb.affine.bias.mul_(2)
        doubled = torgb(x, w) - torgb.bias[:, None, None]
    torch.testing.assert_close(doubled, 2 * base)  # linear in its styles


# --- equalised learning rate, mapping --------------------------------------------------------
def test_equalised_layers_have_unit_gain_at_init():
    torch.manual_seed(0)
    fc = EqualLinear(256, 512, lr_mul=0.01)
    conv = EqualConv2d(32, 64, 3)
    assert fc.weight.std().item() == pytest.approx(100, rel=0.02)  # stored N(0, 1) / lr_mul
    with torch.no_grad():
        y = fc(torch.randn(1024, 256))
        z = conv(torch.randn(16, 32, 16, 16))
    assert y.std().item() == pytest.approx(1.0, rel=0.05)  # runtime scale lr_mul / sqrt(fan_in)
    assert z[..., 1:-1, 1:-1].std().item() == pytest.approx(1.0, rel=0.05)


def test_mapping_learns_a_hundred_times_slower_than_the_affines():
    """Adam moves every stored weight by ~lr; the runtime gains turn that into a relative
    change of lr * lr_mul for the mapping and lr for the (lr_mul 1) style affines."""
    arch = stylegan()
    mapping_fc = arch.generator.mapping.fcs[1]
    affine = arch.generator.synthesis.blocks["b8"].features.convs["conv1"].affine
    before = [(m, m.weight.detach().clone() * m.weight_gain) for m in (mapping_fc, affine)]
    arch.train_step(fake_reals())
    rel = []
    for m, w0 in before:
        w1 = m.weight.detach() * m.weight_gain
        rel.append(((w1 - w0).abs().median() / w0.std()).item())
    assert rel[1] == pytest.approx(0.0025, rel=0.25)
    assert rel[0] / rel[1] == pytest.approx(0.01, rel=0.3)


def test_mapping_normalises_z_and_ignores_its_scale():
    arch = stylegan()
    z = arch.sample_latent(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = arch.mapping(z)
        torch.testing.assert_close(arch.mapping(5.0 * z), w)
    assert w.shape == (4, 128)


# --- capability: styles ---------------------------------------------------------------------
def test_styles_capability_names_every_modulated_layer_and_its_w():
    arch = stylegan()
    assert "styles" in arch.capabilities and "layers" in arch.capabilities
    assert arch.num_ws == 8 and stylegan(RGB64).num_ws == 10
    assert arch.style_layers() == {
        "b4.conv1": 0,
        "b4.torgb": 1,
        "b8.conv0": 1,
        "b8.conv1": 2,
        "b8.torgb": 3,
        "b16.conv0": 3,
        "b16.conv1": 4,
        "b16.torgb": 5,
        "b32.conv0": 5,
        "b32.conv1": 6,
        "b32.torgb": 7,
    }
    chans = arch.channels_per_resolution
    assert chans == {4: 64, 8: 32, 16: 16, 32: 8}
    with torch.no_grad():
        styles = arch.styles(arch.mapping(arch.sample_latent(3)))
    expected_in = {"b4.conv1": 64, "b8.conv0": 64, "b16.conv0": 32, "b32.conv0": 16}
    for name, s in styles.items():
        block = int(name.split(".")[0][1:])
        assert s.shape == (3, expected_in.get(name, chans[block])), name


def test_a_w_reaches_exactly_the_layers_that_read_it():
    arch = stylegan().eval()
    with torch.no_grad():
        ws = arch.broadcast(arch.mapping(arch.sample_latent(2))).clone()
        before = arch.styles(ws)
        ws2 = ws.clone()
        ws2[:, 3] = arch.mapping(arch.sample_latent(2, torch.Generator().manual_seed(9)))
        after = arch.styles(ws2)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"b8.torgb", "b16.conv0"}

    # the last w is read only by the last toRGB: every feature map stays, the image moves
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, []).append(o))
        for n, m in arch.generator_layers().items()
    ]
    ws3 = ws.clone()
    ws3[:, -1] = ws2[:, 3]
    with torch.no_grad():
        images = [arch.synthesis(ws), arch.synthesis(ws3)]
    for h in hooks:
        h.remove()
    assert list(seen) == ["b4", "b8", "b16", "b32"]
    for name, (a, b) in seen.items():
        assert a.shape[1] == arch.channels_per_resolution[int(name[1:])]
        assert torch.equal(a, b), name
    assert not torch.allclose(images[0], images[1])


def test_generate_is_synthesis_of_the_mapped_w_and_deterministic():
    arch = stylegan()
    arch.train_step(fake_reals())
    arch.eval()
    z = arch.sample_latent(4, torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = arch.generate(z)
        w = arch.mapping(z)
        torch.testing.assert_close(arch.generate_from_w(w), x, rtol=0, atol=0)
        torch.testing.assert_close(arch.synthesis(arch.broadcast(w)), x, rtol=0, atol=0)
        torch.randn(100)  # the global RNG moving on changes nothing: the noise maps are stored
        assert torch.equal(arch.generate(z), x)
    assert x.min() >= -1 and x.max() <= 1


# --- truncation, w_avg --------------------------------------------------------------------------
def test_truncation_pulls_w_towards_its_average():
    arch = stylegan(truncation_psi=0.5)
    for i in range(3):
        arch.train_step(fake_reals(seed=i))
    arch.eval()
    w_avg = arch.w_avg.clone()
    assert w_avg.abs().sum() > 0
    z = arch.sample_latent(5, torch.Generator().manual_seed(2))
    with torch.no_grad():
        w = arch.mapping(z)
        torch.testing.assert_close(arch.truncate(w, 0.5) - w_avg, 0.5 * (w - w_avg))
        # psi = 0: every latent gives the image of the average w
        at_zero = arch.generate(z, truncation_psi=0.0)
        centre = arch.generate_from_w(w_avg.expand(5, -1))
        torch.testing.assert_close(at_zero, centre)
        # the param is the default psi of generate; psi = 1 is no truncation
        torch.testing.assert_close(arch.generate(z), arch.generate_from_w(arch.truncate(w, 0.5)))
        torch.testing.assert_close(arch.generate(z, truncation_psi=1.0), arch.generate_from_w(w))
        spread = [arch.generate(z, truncation_psi=p).std(0).mean().item() for p in (1.0, 0.5)]
    assert spread[1] < spread[0]


def test_w_avg_is_a_running_mean_of_the_training_ws():
    arch = stylegan()
    torch.manual_seed(5)
    z = torch.randn(8, arch.latent_dim)  # training_ws draws its first latents first
    with torch.no_grad():
        w = arch.generator.mapping(z)
    torch.manual_seed(5)
    arch.train_step(fake_reals())
    torch.testing.assert_close(arch.generator.mapping.w_avg, 0.005 * w.mean(0))  # from zero
    assert torch.equal(arch.w_avg, arch.generator.mapping.w_avg)  # G_ema copies buffers


# --- style mixing -----------------------------------------------------------------------------
def _distinct_rows(ws: torch.Tensor) -> list[int]:
    """Indices where a sample's w changes from the previous layer's."""
    return [i for i in range(1, ws.shape[1]) if not torch.equal(ws[:, i], ws[:, i - 1])]


def test_style_mixing_switches_latents_once_with_the_set_probability():
    torch.manual_seed(0)
    with torch.no_grad():
        never = stylegan(style_mixing_prob=0.0)
        assert all(_distinct_rows(never.training_ws(3)) == [] for _ in range(20))
        always = stylegan(style_mixing_prob=1.0)
        cutoffs = []
        for _ in range(60):
            switches = _distinct_rows(always.training_ws(3))
            assert len(switches) == 1
            cutoffs.append(switches[0])
        assert set(cutoffs) == set(range(1, always.num_ws))  # uniform over [1, num_ws)
        default = stylegan()
        assert default.params["style_mixing_prob"] == 0.9
        mixed = [bool(_distinct_rows(default.training_ws(2))) for _ in range(400)]
    assert sum(mixed) / len(mixed) == pytest.approx(0.9, abs=0.05)  # binomial sd 0.015


# --- training: loss, R1, optimisers, EMA -------------------------------------------------------
class _ConstantD(nn.Module):
    """D whose logit is ``value`` for every image (the graph stays attached to the inner D)."""

    def __init__(self, inner: nn.Module, value: float) -> None:
        super().__init__()
        self.inner = inner
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 0 + self.value


def test_losses_are_the_non_saturating_logistic_ones():
    arch = stylegan(r1_gamma=0.0)
    arch.discriminator = _ConstantD(arch.discriminator, 1.5)
    out = arch.train_step(fake_reals())
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert float(out["loss_d"]) == pytest.approx(softplus(1.5) + softplus(-1.5), rel=1e-6)
    assert float(out["loss_g"]) == pytest.approx(softplus(-1.5), rel=1e-6)


def test_r1_penalty_is_the_squared_input_gradient():
    x = torch.randn(5, 1, 4, 4)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False))
    penalty, logits = r1_penalty(linear, x)
    assert logits.shape == (5, 1)
    assert penalty.item() == pytest.approx(linear[1].weight.square().sum().item(), rel=1e-5)

    class Quadratic(nn.Module):
        def forward(self, v):
            return v.square().sum(dim=(1, 2, 3))

    penalty, _ = r1_penalty(Quadratic(), x)  # grad 2x: mean of 4 ||x||^2
    assert penalty.item() == pytest.approx(4 * x.square().sum((1, 2, 3)).mean().item(), rel=1e-5)
    assert penalty.requires_grad  # kept for the D step's backward


def test_r1_is_lazy_and_the_optimisers_follow_the_paper():
    arch = stylegan(r1_interval=2)
    (g,) = arch.opt_g.param_groups
    (d,) = arch.opt_d.param_groups
    assert g["lr"] == 0.0025 and g["betas"] == (0.0, 0.99)
    c = 2 / 3  # interval / (interval + 1)
    assert d["lr"] == pytest.approx(0.0025 * c) and d["betas"] == pytest.approx((0.0, 0.99**c))
    assert stylegan().opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * 16 / 17)
    r1 = [float(arch.train_step(fake_reals(seed=i))["r1"]) for i in range(4)]
    assert r1[0] > 0 and r1[1] == r1[0]  # computed at step 0, reported again at step 1
    assert r1[2] != r1[1] and r1[3] == r1[2]
    assert arch.step == 4 and arch.nimg == 32


def test_noise_strengths_start_at_zero_and_learn():
    arch = stylegan()
    convs = [m for m in arch.generator.modules() if isinstance(m, ModulatedConv2d)]
    assert all(m.noise_strength.item() == 0 for m in convs)
    arch.train_step(fake_reals())
    # Adam's first step moves each by lr = 0.0025 (beta1 = 0: a sign step)
    for m in convs:
        assert abs(m.noise_strength.item()) == pytest.approx(0.0025, rel=1e-3)


def test_generator_ema_follows_the_ramped_half_life():
    arch = stylegan()
    assert arch.ema_beta(8) == 0.0  # no images seen: G_ema is a copy
    arch.train_step(fake_reals())
    for p_ema, p in zip(arch.generator_ema.parameters(), arch.generator.parameters(), strict=True):
        assert torch.equal(p_ema, p)
    # after 8 images, half-life min(10k, 0.05 * 8) = 0.4 images; after 10,000: 500
    assert arch.ema_beta(8) == pytest.approx(0.5 ** (8 / 0.4))
    arch.nimg = 10_000
    assert arch.ema_beta(64) == pytest.approx(0.5 ** (64 / 500))
    arch.nimg = 1_000_000
    assert arch.ema_beta(64) == pytest.approx(0.5 ** (64 / 10_000))  # the paper's 10 kimg
    assert stylegan(ema_kimg=0.0).ema_beta(64) == 0.0
    ema_before = copy.deepcopy(arch.generator_ema)
    beta = arch.ema_beta(8)
    out = arch.train_step(fake_reals(seed=1))
    assert float(out["ema_beta"]) == pytest.approx(beta)
    triples = zip(
        arch.generator_ema.parameters(),
        ema_before.parameters(),
        arch.generator.parameters(),
        strict=True,
    )
    for p_ema, p_old, p in triples:
        torch.testing.assert_close(p_ema, p.lerp(p_old, beta))
    assert not all(
        torch.equal(a, b)
        for a, b in zip(ema_before.parameters(), arch.generator.parameters(), strict=True)
    )


# --- discriminator ------------------------------------------------------------------------------
def test_minibatch_std_is_the_std_within_each_group():
    mbstd = MinibatchStd(4)
    x = torch.zeros(8, 2, 3, 3)
    # groups of 4 are {0, 2, 4, 6} and {1, 3, 5, 7}; give the first values -a, a, -a, a
    x[[0, 4]] = -1.5
    x[[2, 6]] = 1.5
    y = mbstd(x)
    assert y.shape == (8, 3, 3, 3) and torch.equal(y[:, :2], x)
    torch.testing.assert_close(y[0::2, 2], torch.full((4, 3, 3), 1.5))
    torch.testing.assert_close(y[1::2, 2], torch.full((4, 3, 3), 1e-4))  # sqrt(0 + 1e-8)
    # a batch of 6 uses groups of 3; a batch of 7 groups of 1 (no spread)
    assert mbstd(torch.randn(6, 1, 2, 2))[:, 1].std() > 0
    torch.testing.assert_close(mbstd(torch.randn(7, 1, 2, 2))[:, 1], torch.full((7, 2, 2), 1e-4))


def test_discriminator_logit_depends_only_on_its_own_minibatch_group():
    torch.manual_seed(0)
    d = StyleDiscriminator(32, 1, {4: 64, 8: 32, 16: 16, 32: 8}, mbstd_group=4).eval()
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    x2 = x.clone()
    x2[1] = -x2[1]  # image 1 shares a group with 3, 5, 7 only
    with torch.no_grad():
        a, b = d(x), d(x2)
    assert a.shape == (8,)
    torch.testing.assert_close(a[0::2], b[0::2], rtol=0, atol=0)
    assert not torch.allclose(a[1::2], b[1::2])
