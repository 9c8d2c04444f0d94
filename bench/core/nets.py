"""Networks more than one family builds: DCGAN's discriminator and initialisation (Radford,
Metz & Chintala 2016), the discriminator of the DCGAN family of architectures and the
classifier of C2ST (``ganbench.metrics.c2st``), as in pytorch/examples' dcgan/main.py."""

from __future__ import annotations

import math

import torch
from torch import nn


def num_upsamplings(image_size: int) -> int:
    n = int(math.log2(image_size)) - 2
    if image_size != 2 ** (n + 2) or n < 1:
        raise ValueError(f"DCGAN needs a power-of-two image size >= 8, got {image_size}")
    return n


class DCGANDiscriminator(nn.Module):
    def __init__(self, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        n = num_upsamplings(image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2),
        ]
        c = width
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),
                nn.BatchNorm2d(2 * c),
                nn.LeakyReLU(0.2),
            ]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
