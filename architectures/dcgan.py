"""DCGAN (Radford, Metz & Chintala 2016), as in pytorch/examples' dcgan/main.py.

Generator: a 1x1 latent through transposed convolutions (stride 2), BatchNorm and ReLU,
to a Tanh image. Discriminator: strided convolutions with LeakyReLU(0.2) and BatchNorm
(none on the first layer), ending in one logit. Non-saturating loss, Adam lr 2e-4,
betas (0.5, 0.999), weights from N(0, 0.02). Every activation is its own module.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.core.nets import DCGANDiscriminator, dcgan_init, num_upsamplings
from ganbench.core.registry import register_architecture

from .base import Architecture

__all__ = ["DCGAN", "DCGANDiscriminator", "DCGANGenerator", "dcgan_init", "up_block"]


def up_block(c_in: int, c_out: int, stride: int = 2, padding: int = 1) -> nn.Sequential:
    """A generator block: 4x4 transposed convolution (doubling the side at stride 2), BatchNorm
    and ReLU; the DCGAN family's generators (DCGAN, InfoGAN, IF-GAN) are stacks of these."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        n = num_upsamplings(image_size)
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 32x32: [4w, 2w, w]
        blocks = [up_block(latent_dim, widths[0], stride=1, padding=0)]  # 1x1 -> 4x4
        blocks += [
            up_block(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(
            nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(z.reshape(z.shape[0], -1, 1, 1)))


@register_architecture("dcgan")
class DCGAN(Architecture):
    """Deep convolutional GAN with the paper's defaults (width 64 is the paper's ngf/ndf)."""

    version = "1"
    capabilities = frozenset({"layers"})
    defaults = {"latent_dim": 100, "width": 64, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999}

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        self.generator = DCGANGenerator(p["latent_dim"], p["width"], self.channels, self.image_size)
        self.discriminator = DCGANDiscriminator(p["width"], self.channels, self.image_size)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr"], betas=betas)
        self.loss = nn.BCEWithLogitsLoss()

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        ones = torch.ones(n, device=real.device)
        zeros = torch.zeros(n, device=real.device)
        fake = self.generator(torch.randn(n, self.latent_dim, device=real.device))

        self.opt_d.zero_grad(set_to_none=True)
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        loss_d = self.loss(d_real, ones) + self.loss(d_fake, zeros)
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        loss_g = self.loss(self.discriminator(fake), ones)  # non-saturating: maximise log D(G(z))
        loss_g.backward()
        self.opt_g.step()

        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": block for i, block in enumerate(self.generator.blocks)}
