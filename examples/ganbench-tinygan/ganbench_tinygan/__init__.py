"""TinyGAN: the smallest GAN that passes `ganbench check`, as an example of a plugin package.

Generator: the latent as a 4x4 map, then nearest-neighbour upsampling + 3x3 conv blocks to
the image size, Tanh. Discriminator: strided 4x4 convs with LeakyReLU, one logit. Hinge
loss, Adam (2e-4, betas (0.5, 0.999)). Every activation is its own module, used once, so
captum's DeepLIFT can explain the discriminator.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganbench.architectures.base import Architecture


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(latent_dim, width * 16)
        blocks = []
        for _ in range(int(math.log2(image_size)) - 2):  # 4 -> image_size
            blocks.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(width, width, 3, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).reshape(z.shape[0], self.width, 4, 4)
        return self.to_image(self.blocks(x))


class Discriminator(nn.Module):
    def __init__(self, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for _ in range(int(math.log2(image_size)) - 2):  # image_size -> 4
            layers += [nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = width
        layers += [nn.Flatten(), nn.Linear(width * 16, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])


class TinyGAN(Architecture):
    """A three-block convolutional GAN with hinge loss (an example plugin)."""

    name = "tinygan"
    version = "1"
    capabilities = frozenset({"layers"})
    defaults = {"latent_dim": 32, "width": 16, "lr": 2e-4}

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        self.generator = Generator(p["latent_dim"], p["width"], self.channels, self.image_size)
        self.discriminator = Discriminator(p["width"], self.channels, self.image_size)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr"], betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=p["lr"], betas=(0.5, 0.999)
        )

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.randn(real.shape[0], self.latent_dim, device=real.device)
        fake = self.generator(z)

        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (
            torch.relu(1 - self.discriminator(real)).mean()
            + torch.relu(1 + self.discriminator(fake.detach())).mean()
        )
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        loss_g = -self.discriminator(fake).mean()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": block for i, block in enumerate(self.generator.blocks)}
