"""SAGAN: Self-Attention GAN (Zhang, Goodfellow, Metaxas & Odena, ICML 2019).

A DCGAN-shaped backbone (transposed convolutions up, strided convolutions down, as in the
widely used PyTorch port of SAGAN) with the paper's four changes:

* **Self-attention** (paper Sec. 3, Eq. 1-3). For a feature map x with C channels and N
  positions, f(x) = W_f x and g(x) = W_g x are 1x1 convolutions to C/8 channels (query and
  key), h(x) = W_h x a 1x1 convolution to C/2 channels (value), and

      beta[j, i] = softmax_i( f(x_j)^T g(x_i) )          (weight of key i for query j)
      o_j       = W_v ( sum_i beta[j, i] h(x_i) )        (W_v: 1x1, C/2 -> C)
      y_j       = x_j + gamma * o_j                      (gamma learned, initialised at 0)

  Keys and values are max-pooled 2x2 before the product, as in BigGAN's implementation
  of the block, so a query attends over N/4 key positions. The block sits after the
  generator block that produces ``attention_resolution`` (default: half the image size,
  where BigGAN puts it) and after the discriminator block that reduces to it.
* **Spectral normalisation** (Miyato et al. 2018) on every convolution and linear layer of
  both networks, with one power iteration per forward pass.
* **Hinge loss**: L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], L_G = -E[D(G(z))].
* **Two time-scale update rule** (Heusel et al. 2017): D lr 4e-4, G lr 1e-4, Adam betas
  (0, 0.9), one D step per G step.

Capability ``attention``: :meth:`SAGAN.attention_maps` returns, for a batch, every
attention block's maps beta as (batch, Hq, Wq, Hk, Wk) tensors: for each query position a
distribution over key positions. Every activation of the discriminator is its own module,
used once, so captum's DeepLIFT sees each non-linearity.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.core.registry import register_architecture

from .base import Architecture


def sn(module: nn.Module) -> nn.Module:
    """``module`` with BigGAN's orthogonal initialisation, then spectrally normalised (one
    power iteration per training forward; the iteration vectors start from this weight)."""
    nn.init.orthogonal_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block with BigGAN's 2x2 max-pooled keys and values."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.query = sn(nn.Conv2d(channels, channels // 8, 1, bias=False))
        self.key = sn(nn.Conv2d(channels, channels // 8, 1, bias=False))
        self.value = sn(nn.Conv2d(channels, channels // 2, 1, bias=False))
        self.out = sn(nn.Conv2d(channels // 2, channels, 1, bias=False))
        self.pool_key = nn.MaxPool2d(2)
        self.pool_value = nn.MaxPool2d(2)
        self.softmax = nn.Softmax(dim=-1)
        self.gamma = nn.Parameter(torch.zeros(()))
        self.keep_attention = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (b, c/8, N)
        k = self.pool_key(self.key(x)).flatten(2)  # (b, c/8, N/4)
        v = self.pool_value(self.value(x)).flatten(2)  # (b, c/2, N/4)
        beta = self.softmax(torch.bmm(q.transpose(1, 2), k))  # (b, N, N/4): rows sum to 1
        if self.keep_attention:
            self.last_attention = beta.detach().reshape(b, h, w, h // 2, w // 2)
        o = torch.bmm(v, beta.transpose(1, 2)).reshape(b, c // 2, h, w)
        return x + self.gamma * self.out(o)


def _levels(image_size: int) -> int:
    n = int(math.log2(image_size)) - 2
    if image_size != 2 ** (n + 2) or n < 1:
        raise ValueError(f"SAGAN needs a power-of-two image size >= 8, got {image_size}")
    return n


class SAGANGenerator(nn.Module):
    """z -> 4x4 -> ... -> image; BatchNorm + ReLU per block; attention at ``attention_resolution``."""

    def __init__(
        self, latent_dim: int, width: int, channels: int, image_size: int, attention_resolution: int
    ) -> None:
        super().__init__()
        n = _levels(image_size)
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # 32x32: [4w, 2w, w] at 4, 8, 16
        blocks: list[nn.Module] = [
            nn.Sequential(
                sn(nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0)),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
            )
        ]
        resolution = 4
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            resolution *= 2
            block = [
                sn(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
            if resolution == attention_resolution:
                block.append(SelfAttention(c_out))
            blocks.append(nn.Sequential(*block))
        if attention_resolution not in [4 * 2**i for i in range(1, n)]:
            raise ValueError(
                f"SAGAN generator: attention_resolution {attention_resolution} must be one of "
                f"{[4 * 2**i for i in range(1, n)]} for {image_size}x{image_size} images"
            )
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(
            sn(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(z.reshape(z.shape[0], -1, 1, 1)))


class SAGANDiscriminator(nn.Module):
    """Strided convolutions with LeakyReLU(0.1), no BatchNorm (spectral norm instead)."""

    def __init__(
        self, width: int, channels: int, image_size: int, attention_resolution: int
    ) -> None:
        super().__init__()
        n = _levels(image_size)
        layers: list[nn.Module] = []
        c_in, c_out, resolution = channels, width, image_size
        for _ in range(n):
            resolution //= 2
            layers += [sn(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.1)]
            if resolution == attention_resolution:
                layers.append(SelfAttention(c_out))
            c_in, c_out = c_out, 2 * c_out
        layers.append(sn(nn.Conv2d(c_in, 1, 4, 1, 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])


@register_architecture("sagan")
class SAGAN(Architecture):
    """Self-attention GAN: attention in G and D, spectral norm, hinge loss, TTUR."""

    version = "1"
    capabilities = frozenset({"layers", "attention"})
    defaults = {
        "latent_dim": 128,
        "width": 64,
        "attention_resolution": 0,  # 0: half the image size (BigGAN's placement)
        "lr_g": 1e-4,
        "lr_d": 4e-4,
        "beta1": 0.0,
        "beta2": 0.9,
    }

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        res = p["attention_resolution"] or self.image_size // 2
        self.generator = SAGANGenerator(
            p["latent_dim"], p["width"], self.channels, self.image_size, res
        )
        self.discriminator = SAGANDiscriminator(p["width"], self.channels, self.image_size, res)
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr_d"], betas=betas)

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        z = torch.randn(n, self.latent_dim, device=real.device)
        fake = self.generator(z)

        self.opt_d.zero_grad(set_to_none=True)
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        loss_d = torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        loss_g = -self.discriminator(fake).mean()
        loss_g.backward()
        self.opt_g.step()

        gammas = [m.gamma.detach() for m in self.attention_blocks().values()]
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": d_real.mean().detach(),
            "d_fake": d_fake.mean().detach(),
            **{f"gamma_{name}": g for name, g in zip(self.attention_blocks(), gammas, strict=True)},
        }

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": block for i, block in enumerate(self.generator.blocks)}

    # --- capability: attention ------------------------------------------------------
    def attention_blocks(self) -> dict[str, SelfAttention]:
        """The self-attention blocks by name: ``generator`` and ``discriminator``."""
        g = [m for m in self.generator.modules() if isinstance(m, SelfAttention)]
        d = [m for m in self.discriminator.modules() if isinstance(m, SelfAttention)]
        return {"generator": g[0], "discriminator": d[0]}

    @torch.no_grad()
    def attention_maps(
        self, z: torch.Tensor, images: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Attention maps, (batch, Hq, Wq, Hk, Wk), each query's weights over keys summing to 1.

        ``generator``: while generating from ``z``; ``discriminator``: while D looks at
        ``images`` (the images generated from ``z`` when None).
        """
        blocks = self.attention_blocks()
        for block in blocks.values():
            block.keep_attention = True
        try:
            generated = self.generate(z)
            self.discriminator_logits(generated if images is None else images)
            maps = {name: block.last_attention for name, block in blocks.items()}
        finally:
            for block in blocks.values():
                block.keep_attention = False
                block.last_attention = None
        return maps
