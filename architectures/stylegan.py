"""StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, CVPR 2020: "Analyzing and
Improving the Image Quality of StyleGAN"), compact, for 32x32 and 64x64 images.

**Generator** = mapping network + synthesis network (paper Fig. 2d, config E/F):

* Mapping f: Z -> W. z ~ N(0, I) is pixel-normalised, z / sqrt(mean(z^2) + 1e-8), then
  passes ``mapping_layers`` fully connected layers (8 in the paper) with leaky ReLU 0.2 and
  learning-rate multiplier 0.01 (StyleGAN, Sec. 2 and App. C).
* Synthesis g: from a learned 4x4 constant, one block per resolution 4, 8, ..., image size.
  Each block has two 3x3 modulated convolutions (one at 4x4), each fed its own w, and a
  1x1 toRGB whose outputs are summed over resolutions ("skip" generator, Fig. 7a). The
  modulated convolution (Sec. 2.2, Eq. 1-3), for input channel i, output channel j, tap k:

      s    = A(w)                                    (affine, bias initialised at 1)
      w'   = s_i * w_ijk                             (modulation,   Eq. 1)
      w''  = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps) (demodulation, Eq. 3; eps = 1e-8)

  so each output channel's per-sample weight has unit L2 norm over (in, kh, kw). It is
  computed, as the official code does while training, by scaling the activations before
  the convolution (by s) and after it (by the demodulation coefficients), a plain batched
  convolution that is faster on CPU at these sizes than the grouped ("fused")
  convolution with per-sample weights (both are implemented; a test checks they agree).
  After each convolution: per-pixel noise (one N(0, 1) map per sample, shared by the
  channels) times a learned strength initialised at 0, a bias, leaky ReLU 0.2 times
  sqrt(2). toRGB is modulated but not demodulated and has no activation.
* Upsampling as in the paper: the first conv of a block is a stride-2 transposed 3x3
  convolution followed by the [1, 3, 3, 1] FIR low-pass filter (gain 4). That equals
  bilinear 2x upsampling followed by a 3x3 convolution except at the borders (bilinear
  upsampling is zero insertion followed by the same separable filter, and linear filters
  commute; a test checks it), at a quarter of the multiply-adds. The toRGB skip images
  are upsampled bilinearly, the same filter.
* Equalised learning rate everywhere: weights are stored N(0, 1) (divided by the
  learning-rate multiplier) and scaled at run time by lr_mul / sqrt(fan_in).

**Discriminator**: residual (Fig. 7c, config E/F): fromRGB (1x1) at the image resolution,
then one block per resolution down to 4x4, each ``(skip + main) / sqrt(2)`` with
main = conv3x3 -> lrelu -> downsample -> conv3x3 -> lrelu and skip = downsample -> 1x1
conv without bias; downsampling is 2x2 average pooling (a simplification: the paper
low-pass filters with [1, 3, 3, 1] then subsamples by 2). An epilogue at 4x4: minibatch standard deviation (group size 4, one feature;
Karras et al. 2018), conv3x3, FC, FC -> one logit. Every activation and pooling is its own
module, used once per forward, so captum's DeepLIFT sees each non-linearity.

**Training** (official stylegan2 / stylegan2-ada code): non-saturating logistic loss,
L_D = softplus(D(G(z))) + softplus(-D(x)), L_G = softplus(-D(G(z))); lazy R1 on reals,
(gamma / 2) * E ||grad_x D(x)||^2, every ``r1_interval`` = 16 steps and scaled by the
interval (Sec. 3.1), added to that step's D loss (the official code takes a separate
optimiser step for it); D's Adam uses lr * c and betas ** c with c = 16 / 17, as the
official code does for lazily regularised networks. Style mixing (StyleGAN,
Sec. 3.1): with probability 0.9 a batch uses two latents, switching from w1 to w2 at a
random layer index in [1, num_ws). Adam lr 0.0025, betas (0, 0.99). Path-length
regularisation is **omitted** (it is a G-side smoothness prior; at the smoke budget it
would cost a second synthesis backward every 4 steps). The running mean of w, ``w_avg``
(a buffer; beta 0.995 per step), feeds the truncation trick, w' = w_avg + psi (w - w_avg)
(``truncation_psi``, default 1 = none). An exponential moving average of G ("G_ema",
half-life ``ema_kimg`` thousand images, 10 in the paper) is what :meth:`generate` uses;
with ``ema_rampup`` (0.05, from stylegan2-ada) the half-life is capped at 5% of the images
seen so far, so that at a budget of ~100k images the average follows a network that is
still improving (half-life ~5k images at the end of 1,500 steps of 64). Generated images
are clamped to [-1, 1], as the official code does when it saves them (no tanh).

**Capability ``styles``**: ``mapping(z)`` -> w (B, w_dim); ``num_ws``; ``truncate(w, psi)``;
``synthesis(ws)`` from (B, num_ws, w_dim); ``generate_from_w(w)`` from (B, w_dim) or
(B, num_ws, w_dim); ``styles(w)`` -> {layer name: (B, in_channels)}, the style vectors s
of every modulated layer ("b8.conv0", "b8.conv1", "b8.torgb", ...); ``style_layers()``
names them with their w index; ``w_avg``. All of them use G_ema, with the stored
("const") noise maps, so ``generate(z) == generate_from_w(truncate(mapping(z), psi))``
exactly. ``generator_layers()``: each block's feature-map output (``b4``, ``b8``, ...).

**Sizes**: ``width`` is the channel count at the image resolution, doubled at each halving
up to ``channel_max`` (the paper: 512 at 32x32 and below); 32x32 at width 64 is
64/128/256/512 channels at 32/16/8/4. z and w are 128-d (the paper: 512, sized for
1024x1024 faces): digits and procedural shapes have few factors of variation, 128 is what
the other architectures here use for z, and the affines' cost scales with w_dim. The
activations are kept channels-last (about 20% faster on CPU at these widths).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ganbench.core.registry import register_architecture

from .base import Architecture

SQRT2 = math.sqrt(2.0)
SQRT_HALF = math.sqrt(0.5)
NOISE_MODES = ("random", "const", "none")
MEMORY_FORMAT = torch.channels_last


def _resolutions(image_size: int) -> list[int]:
    """4, 8, ..., image_size; the image size must be a power of two >= 8."""
    n = int(math.log2(image_size))
    if image_size != 2**n or image_size < 8:
        raise ValueError(f"StyleGAN2 needs a power-of-two image size >= 8, got {image_size}")
    return [2**i for i in range(2, n + 1)]


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """z / sqrt(mean(z^2) + eps) over the feature axis: the mapping ignores the scale of z."""
    return z * (z.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: weight N(0, 1) / lr_mul, used as
    weight * lr_mul / sqrt(in); bias stored as given and used as bias * lr_mul."""

    def __init__(
        self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


class EqualConv2d(nn.Module):
    """Convolution (stride 1, 'same' padding) with equalised learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


# --- generator ----------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z -> pixel norm -> ``layers`` x (FC, lrelu 0.2 x sqrt 2) -> w; tracks ``w_avg``."""

    def __init__(self, latent_dim: int, w_dim: int, layers: int, lr_mul: float) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the mapping network needs at least one layer, got {layers}")
        dims = [latent_dim] + [w_dim] * layers
        self.fcs = nn.ModuleList(
            EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.acts = nn.ModuleList(nn.LeakyReLU(0.2) for _ in range(layers))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for fc, act in zip(self.fcs, self.acts, strict=True):
            x = act(fc(x)) * SQRT2
        return x


class ModulatedConv2d(nn.Module):
    """A synthesis layer: modulated + demodulated 3x3 conv (2x upsampling when ``up``) ->
    noise -> bias -> lrelu 0.2 x sqrt(2). ``resolution`` is the output resolution.

    Upsampling as in the paper: a stride-2 transposed convolution, then the [1, 3, 3, 1]
    low-pass filter (gain 4), which equals bilinear 2x upsampling followed by the 3x3
    convolution away from the borders, at a quarter of its multiply-adds.
    """

    fused = False  # True: grouped convolution with per-sample weights (slower on CPU here)

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = nn.LeakyReLU(0.2)
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4  # sums to 2 per axis: gain 4 in 2-D
        self.register_buffer("blur", torch.outer(f, f)[None, None], persistent=False)
        self.resolution = resolution
        self.up = up

    def modulated_weight(self, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """Per-sample weights w'' (B, out, in, kh, kw) of Eq. 1 and 3."""
        w = self.weight.unsqueeze(0) * styles[:, None, :, None, None]
        return w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + eps).rsqrt()

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        """Correlate with ``weight`` (out, in/groups, 3, 3), at 2x resolution when ``up``."""
        if not self.up:
            return F.conv2d(x, weight, padding=1, groups=groups)
        # zero insertion + correlation with w = transposed conv with the flipped kernel;
        # its 2H+1 outputs, zero-padded by 1, then filtered by the 4-tap blur give 2H.
        out_per_group = weight.shape[0] // groups
        tw = weight.flip(2, 3).reshape(groups, out_per_group, -1, 3, 3).transpose(1, 2)
        y = F.conv_transpose2d(x, tw.reshape(-1, out_per_group, 3, 3), stride=2, groups=groups)
        c = y.shape[1]
        return F.conv2d(F.pad(y, (1, 1, 1, 1)), self.blur.expand(c, 1, 4, 4), groups=c)

    def modulated_conv(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """The convolution with the per-sample demodulated weights (no noise, bias or act)."""
        b = x.shape[0]
        if self.fused:
            w = self.modulated_weight(styles).reshape(-1, *self.weight.shape[1:])
            y = self._conv(x.reshape(1, -1, *x.shape[2:]), w, groups=b)
            return y.reshape(b, -1, *y.shape[2:])
        # sum_{i,k} (s_i w_ijk)^2 = sum_i s_i^2 (sum_k w_ijk^2): (B, in) @ (in, out)
        dcoefs = (styles.square() @ self.weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
        y = self._conv(x * styles[:, :, None, None], self.weight, groups=1)
        return y * dcoefs[:, :, None, None]

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = self.modulated_conv(x, self.affine(w))
        if noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            x = x + torch.randn(shape, device=x.device) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return self.act(x + self.bias[:, None, None]) * SQRT2


class ToRGB(nn.Module):
    """1x1 modulated convolution to image channels, no demodulation, no activation."""

    def __init__(self, in_channels: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return F.conv2d(x * styles[:, :, None, None], self.weight, self.bias)


class SynthesisFeatures(nn.Module):
    """A block's convolutions; its output is the block's feature map (what dissection hooks).

    At 4x4: the learned constant then one modulated conv; above: two, the first upsampling.
    """

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, w_start: int
    ) -> None:
        super().__init__()
        self.w_start = w_start
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.convs = nn.ModuleDict(
                {"conv1": ModulatedConv2d(out_channels, out_channels, w_dim, 4)}
            )
        else:
            self.const = None
            self.convs = nn.ModuleDict(
                {
                    "conv0": ModulatedConv2d(in_channels, out_channels, w_dim, resolution, up=True),
                    "conv1": ModulatedConv2d(out_channels, out_channels, w_dim, resolution),
                }
            )

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if self.const is not None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = x.contiguous(memory_format=MEMORY_FORMAT)
        for i, conv in enumerate(self.convs.values()):
            x = conv(x, ws[:, self.w_start + i], noise_mode)
        return x


class SynthesisBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        w_dim: int,
        resolution: int,
        w_start: int,
    ) -> None:
        super().__init__()
        self.features = SynthesisFeatures(in_channels, out_channels, w_dim, resolution, w_start)
        self.num_conv = len(self.features.convs)
        self.torgb_index = w_start + self.num_conv  # shared with the next block's conv0
        self.torgb = ToRGB(out_channels, channels, w_dim)
        self.up_image = (
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            if resolution > 4
            else None
        )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x, ws, noise_mode)
        y = self.torgb(x, ws[:, self.torgb_index])
        return x, (y if img is None else self.up_image(img) + y)


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> image (unclamped), blocks ``b4``, ``b8``, ... ."""

    def __init__(self, w_dim: int, image_size: int, channels: int, chans: dict[int, int]):
        super().__init__()
        self.blocks = nn.ModuleDict()
        w_start = 0
        for res in _resolutions(image_size):
            block = SynthesisBlock(
                chans.get(res // 2, 0), chans[res], channels, w_dim, res, w_start
            )
            self.blocks[f"b{res}"] = block
            w_start += block.num_conv
        self.num_ws = w_start + 1  # every conv has its own w; the last toRGB one more

    def layer_index(self) -> dict[str, tuple[nn.Module, int]]:
        """Every modulated layer by name, with the index of the w it reads."""
        out: dict[str, tuple[nn.Module, int]] = {}
        for name, block in self.blocks.items():
            for i, (conv_name, conv) in enumerate(block.features.convs.items()):
                out[f"{name}.{conv_name}"] = (conv, block.features.w_start + i)
            out[f"{name}.torgb"] = (block.torgb, block.torgb_index)
        return out

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be (batch, {self.num_ws}, w_dim), got {tuple(ws.shape)}")
        x = img = None
        for block in self.blocks.values():
            x, img = block(x, img, ws, noise_mode)
        return img


class StyleGenerator(nn.Module):
    def __init__(
        self,
        latent_dim: int,
        w_dim: int,
        mapping_layers: int,
        lr_mul: float,
        image_size: int,
        channels: int,
        chans: dict[int, int],
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers, lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, image_size, channels, chans)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        w = self.mapping(z)
        if truncation_psi != 1.0:
            w = self.mapping.w_avg.lerp(w, truncation_psi)
        ws = w.unsqueeze(1).expand(-1, self.synthesis.num_ws, -1)
        return self.synthesis(ws, "const")


# --- discriminator ------------------------------------------------------------------------
class MinibatchStd(nn.Module):
    """Appends one feature map: the std over groups of ``group_size`` images (member i of a
    batch of N shares its group with i + N/G, i + 2N/G, ...), averaged over channels and
    pixels. G is the largest divisor of N not above ``group_size``."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        y = x.reshape(g, n // g, c, h, w)
        var = (y - y.mean(dim=0)).square().mean(dim=0)  # (faster than .var on CPU here)
        y = (var + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/G,)
        y = y.reshape(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


class Downsample2x(nn.Module):
    """2x2 average pooling, as a fixed depthwise stride-2 convolution (twice as fast on CPU
    as ``avg_pool2d`` here). Linear, so DeepLIFT's rules need nothing special for it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.full((channels, 1, 2, 2), 0.25), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, stride=2, groups=x.shape[1])


class DiscriminatorBlock(nn.Module):
    """Residual: ((conv3x3, lrelu, down, conv3x3, lrelu) + (down, conv1x1)) / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.act0 = nn.LeakyReLU(0.2)
        self.down = Downsample2x(in_channels)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3)
        self.act1 = nn.LeakyReLU(0.2)
        self.skip_down = Downsample2x(in_channels)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(self.skip_down(x))
        x = self.act0(self.conv0(x)) * SQRT2
        x = self.act1(self.conv1(self.down(x))) * SQRT2
        return (x + y) * SQRT_HALF


class StyleDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, chans: dict[int, int], mbstd_group: int):
        super().__init__()
        res = _resolutions(image_size)
        self.from_rgb = EqualConv2d(channels, chans[image_size], 1)
        self.from_rgb_act = nn.LeakyReLU(0.2)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(chans[r], chans[r // 2]) for r in reversed(res[1:]))
        )
        c = chans[4]
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(c + 1, c, 3)
        self.conv_act = nn.LeakyReLU(0.2)
        self.fc = EqualLinear(c * 16, c)
        self.fc_act = nn.LeakyReLU(0.2)
        self.out = EqualLinear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.from_rgb_act(self.from_rgb(x)) * SQRT2
        x = x.contiguous(memory_format=MEMORY_FORMAT)
        x = self.blocks(x)
        x = self.conv_act(self.conv(self.mbstd(x))) * SQRT2
        x = self.fc_act(self.fc(x.flatten(1))) * SQRT2
        return self.out(x).reshape(x.shape[0])


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over the batch of ||grad_x D(x)||^2, the logits), with the graph kept for backprop."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean(), logits


@register_architecture("stylegan")
class StyleGAN2(Architecture):
    """StyleGAN2 (config E/F without path-length regularisation), compact; see the module doc."""

    version = "1"
    capabilities = frozenset({"layers", "styles"})
    defaults = {
        "latent_dim": 128,  # z; the paper's 512 is sized for 1024x1024 faces
        "w_dim": 128,
        "mapping_layers": 8,
        "mapping_lr_mul": 0.01,
        "width": 64,  # channels at the image resolution, doubled per halving up to channel_max
        "channel_max": 512,
        "style_mixing_prob": 0.9,
        "r1_gamma": 0.01,  # stylegan2-ada's CIFAR-10 (32x32) value
        "r1_interval": 16,
        "lr": 0.0025,
        "beta1": 0.0,
        "beta2": 0.99,
        "ema_kimg": 10.0,  # half-life of G_ema in thousands of images; 0: no averaging
        "ema_rampup": 0.05,  # cap the half-life at this share of the images seen; 0: off
        "w_avg_beta": 0.995,
        "truncation_psi": 1.0,
        "mbstd_group": 4,
    }

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        self.w_dim = p["w_dim"]
        size = self.image_size
        chans = {r: min(p["width"] * size // r, p["channel_max"]) for r in _resolutions(size)}
        self.channels_per_resolution = chans
        self.generator = StyleGenerator(
            p["latent_dim"],
            p["w_dim"],
            p["mapping_layers"],
            p["mapping_lr_mul"],
            size,
            self.channels,
            chans,
        )
        self.discriminator = StyleDiscriminator(size, self.channels, chans, p["mbstd_group"])
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr"], betas=betas)
        c = p["r1_interval"] / (p["r1_interval"] + 1)  # lazy regularisation (official code)
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=p["lr"] * c, betas=(betas[0] ** c, betas[1] ** c)
        )
        self.step = 0
        self.nimg = 0
        self.last_r1 = torch.zeros(())

    def networks(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "generator_ema": self.generator_ema,
        }

    # --- training -----------------------------------------------------------------------
    def training_ws(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """ws (n, num_ws, w_dim) for a training batch, from the training G's mapping, with
        style mixing; updates ``w_avg`` from the first latents (as the official code does)."""
        mapping = self.generator.mapping
        num_ws = self.num_ws
        z = torch.randn(n, self.latent_dim, device=device)
        z2 = torch.randn(n, self.latent_dim, device=device)
        cutoff = int(torch.randint(1, num_ws, ()))
        if float(torch.rand(())) >= self.params["style_mixing_prob"]:
            cutoff = num_ws
        w = mapping(z)
        with torch.no_grad():
            mapping.w_avg.copy_(w.detach().mean(0).lerp(mapping.w_avg, self.params["w_avg_beta"]))
        ws = w.unsqueeze(1).expand(-1, cutoff, -1)
        if cutoff < num_ws:
            ws2 = mapping(z2).unsqueeze(1).expand(-1, num_ws - cutoff, -1)
            ws = torch.cat([ws, ws2], dim=1)
        return ws

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.params
        n = real.shape[0]
        fake = self.generator.synthesis(self.training_ws(n, real.device), "random")

        self.opt_d.zero_grad(set_to_none=True)
        d_fake = self.discriminator(fake.detach())
        if p["r1_gamma"] > 0 and self.step % p["r1_interval"] == 0:
            penalty, d_real = r1_penalty(self.discriminator, real)
            reg = penalty * (p["r1_gamma"] / 2) * p["r1_interval"]
            self.last_r1 = penalty.detach()
        else:
            d_real = self.discriminator(real)
            reg = 0.0
        loss_d_main = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        (loss_d_main + reg).backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(False)
        try:
            loss_g = F.softplus(-self.discriminator(fake)).mean()  # non-saturating
            loss_g.backward()
        finally:
            self.discriminator.requires_grad_(True)
        self.opt_g.step()

        beta = self._update_ema(n)
        self.step += 1
        self.nimg += n
        return {
            "loss_d": loss_d_main.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
            "r1": self.last_r1.to(real.device),
            "ema_beta": torch.tensor(beta, device=real.device),
        }

    def ema_beta(self, batch: int) -> float:
        """The G_ema decay for a step of ``batch`` images after ``self.nimg`` images."""
        p = self.params
        if p["ema_kimg"] <= 0:
            return 0.0
        half_life = p["ema_kimg"] * 1000
        if p["ema_rampup"] > 0:
            half_life = min(half_life, self.nimg * p["ema_rampup"])
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def _update_ema(self, batch: int) -> float:
        beta = self.ema_beta(batch)
        params = zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True)
        for p_ema, p in params:
            p_ema.copy_(p.lerp(p_ema, beta))
        buffers = zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True)
        for b_ema, b in buffers:
            b_ema.copy_(b)
        return beta

    # --- sampling -----------------------------------------------------------------------
    def generate(self, z: torch.Tensor, truncation_psi: float | None = None) -> torch.Tensor:
        """Images in [-1, 1] from G_ema, truncated by ``truncation_psi`` (default: the param)."""
        psi = self.params["truncation_psi"] if truncation_psi is None else truncation_psi
        return self.generate_from_w(self.truncate(self.mapping(z), psi))

    def generator_layers(self) -> dict[str, nn.Module]:
        return {name: b.features for name, b in self.generator_ema.synthesis.blocks.items()}

    # --- capability: styles -------------------------------------------------------------
    @property
    def num_ws(self) -> int:
        """How many w vectors the synthesis network reads (one per modulated conv, +1)."""
        return self.generator.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        """The running mean of w (the truncation centre), (w_dim,)."""
        return self.generator_ema.mapping.w_avg

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """w = f(z), (B, w_dim), untruncated."""
        return self.generator_ema.mapping(z)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """w_avg + psi (w - w_avg), for w of any shape ending in w_dim."""
        return w if psi == 1.0 else self.w_avg.lerp(w, psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, num_ws, w_dim); (B, num_ws, w_dim) is returned as is."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1) if w.dim() == 2 else w

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from ws (B, num_ws, w_dim), with the stored noise maps."""
        return self.generator_ema.synthesis(ws, "const").clamp(-1.0, 1.0)

    def generate_from_w(self, w: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from w (B, w_dim) (every layer) or ws (B, num_ws, w_dim)."""
        return self.synthesis(self.broadcast(w))

    def style_layers(self) -> dict[str, int]:
        """Every modulated layer's name with the index of the w it reads, in synthesis order."""
        return {name: i for name, (_, i) in self.generator_ema.synthesis.layer_index().items()}

    def styles(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """The style vectors s = A(w) of every modulated layer, {name: (B, in_channels)},
        from w (B, w_dim) or ws (B, num_ws, w_dim). toRGB styles are before its 1/sqrt(fan_in)."""
        ws = self.broadcast(w)
        return {
            name: layer.affine(ws[:, i])
            for name, (layer, i) in self.generator_ema.synthesis.layer_index().items()
        }
