"""InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel, NeurIPS 2016).

The latent is split into incompressible noise and structured codes,
z = [noise ~ U(-1, 1) (62) | categorical code, one-hot (10) | continuous codes ~ U(-1, 1) (2)],
and the GAN objective is augmented with a variational lower bound L_I of the mutual
information between the codes c and the generated image (paper Eq. 5-6):

    min_{G,Q} max_D  V_GAN(D, G) - lambda * L_I(G, Q),
    L_I = E_{c, x~G(z, c)}[log Q(c | x)] + H(c).

Q shares the discriminator's trunk and adds one hidden layer and an output layer: logits
for the categorical code (its log Q is the negative cross-entropy) and the means of a
factored Gaussian with fixed standard deviation for the continuous codes (its log Q is the
negative Gaussian NLL), as in the authors' code, where both D and G minimise the
lambda * (CE + NLL) term: D and Q in one optimiser (lr 2e-4), G in another (lr 1e-3),
Adam beta1 0.5, lambda = 1, non-saturating GAN loss.

Networks follow the paper's MNIST architecture (Table in its appendix), widened to the
dataset's image size: G is FC 1024 - BN - ReLU, FC to (2w x 8 x 8) - BN - ReLU, then 4x4
stride-2 transposed convolutions (BN - ReLU) up to the image, Tanh; the D trunk is 4x4
stride-2 convolutions (LeakyReLU 0.1, BN from the second), FC 1024 - BN - LeakyReLU; D's
head is FC 1; Q's head is FC 128 - BN - LeakyReLU - FC. w = ``width`` = 64 as in the paper.

The noise is uniform on [-1, 1], as in the authors' MNIST launcher (``Uniform(62)``), not
N(0, 1): the prior matters. Measured on digits (width 16, 1,500 steps, seed 0), the
categorical code's Hungarian accuracy against the digit classifier is 0.91 with uniform
noise and 0.19 with Gaussian noise, whose 62 dims (norm ~7.9 against ~4.5) drown the
one-hot code, so G hides the code in a small change and the noise decides the digit.
``noise = "normal"`` keeps the Gaussian variant.

Capability ``codes``: :meth:`InfoGAN.code_spec` reports the layout, :meth:`sample_latent`
can fix the categorical value and the continuous codes, and :meth:`split_latent` takes a
latent apart, so that an explainer can generate each category with a continuous sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ganbench.core.registry import register_architecture

from .base import Architecture
from .dcgan import dcgan_init, up_block

BASE = 8  # side of the first feature map in G and the last one in D's conv trunk


@dataclass(frozen=True)
class CodeSpec:
    """Layout of InfoGAN's latent: noise, then one-hot categories, then continuous codes."""

    noise_dim: int
    categories: int
    continuous: int
    continuous_range: tuple[float, float] = (-1.0, 1.0)

    @property
    def latent_dim(self) -> int:
        return self.noise_dim + self.categories + self.continuous


def _ups(image_size: int) -> int:
    n = int(math.log2(image_size)) - 3
    if image_size != BASE * 2**n or n < 1:
        raise ValueError(f"InfoGAN needs a power-of-two image size >= 16, got {image_size}")
    return n


class InfoGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        n = _ups(image_size)
        widths = [max(2 * width // 2**i, 4) for i in range(n)]  # 32x32: [2w, w] at 8, 16
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, widths[0] * BASE * BASE),
            nn.BatchNorm1d(widths[0] * BASE * BASE),
            nn.ReLU(),
            nn.Unflatten(1, (widths[0], BASE, BASE)),
        )
        self.blocks = nn.Sequential(
            *[up_block(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.to_image = nn.Sequential(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(self.fc(z)))


class InfoGANDiscriminator(nn.Module):
    """Shared trunk with the D head (one logit) and the Q head (code parameters).

    ``forward`` is D alone (what explainers attribute); ``forward_with_q`` runs the trunk
    once and returns both heads.
    """

    def __init__(self, width: int, channels: int, image_size: int, q_outputs: int) -> None:
        super().__init__()
        n = _ups(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.1)]
        c = width
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),
                nn.BatchNorm2d(2 * c),
                nn.LeakyReLU(0.1),
            ]
            c *= 2
        layers += [
            nn.Flatten(),
            nn.Linear(c * BASE * BASE, 1024, bias=False),
            nn.BatchNorm1d(1024),
            nn.LeakyReLU(0.1),
        ]
        self.trunk = nn.Sequential(*layers)
        self.d_head = nn.Linear(1024, 1)
        self.q_head = nn.Sequential(
            nn.Linear(1024, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.LeakyReLU(0.1),
            nn.Linear(128, q_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d_head(self.trunk(x)).reshape(x.shape[0])

    def forward_with_q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.d_head(h).reshape(x.shape[0]), self.q_head(h)


@register_architecture("infogan")
class InfoGAN(Architecture):
    """Information-maximising GAN with categorical and continuous latent codes."""

    version = "2"  # 2: uniform noise, as in the authors' code
    capabilities = frozenset({"layers", "codes"})
    defaults = {
        "noise_dim": 62,
        "noise": "uniform",  # the noise's prior: "uniform" U(-1, 1) (the authors'), or "normal"
        "categories": 10,
        "continuous": 2,
        "width": 64,
        "info_lambda": 1.0,  # lambda of the categorical term
        "info_lambda_continuous": 1.0,  # lambda of the continuous term
        "continuous_std": 1.0,  # Q's fixed standard deviation for continuous codes
        "lr_g": 1e-3,
        "lr_d": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
    }

    def build(self) -> None:
        p = self.params
        if p["categories"] < 0 or p["continuous"] < 0 or p["noise_dim"] < 0:
            raise ValueError("InfoGAN: noise_dim, categories and continuous must be >= 0")
        if p["noise"] not in ("normal", "uniform"):
            raise ValueError(f"InfoGAN: noise must be 'normal' or 'uniform', got {p['noise']!r}")
        if p["continuous_std"] <= 0:
            raise ValueError("InfoGAN: continuous_std must be positive")
        self.codes = CodeSpec(p["noise_dim"], p["categories"], p["continuous"])
        self.latent_dim = self.codes.latent_dim
        self.generator = InfoGANGenerator(
            self.latent_dim, p["width"], self.channels, self.image_size
        )
        self.discriminator = InfoGANDiscriminator(
            p["width"], self.channels, self.image_size, p["categories"] + p["continuous"]
        )
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr_d"], betas=betas)
        self.loss = nn.BCEWithLogitsLoss()

    # --- capability: codes ----------------------------------------------------------
    def code_spec(self) -> CodeSpec:
        return self.codes

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        category: int | torch.Tensor | None = None,
        continuous: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` latents [noise | one-hot | continuous], drawn on the CPU from ``generator``.

        ``category`` (an int or n ints) and ``continuous`` (n x continuous values, or one row
        broadcast) override the drawn codes; the noise is drawn the same way either way, so
        fixing a code changes nothing else in the latent.
        """
        spec = self.codes
        if self.params["noise"] == "uniform":
            noise = torch.rand(n, spec.noise_dim, generator=generator) * 2 - 1
        else:
            noise = torch.randn(n, spec.noise_dim, generator=generator)
        cat = torch.randint(0, max(spec.categories, 1), (n,), generator=generator)
        low, high = spec.continuous_range
        cont = torch.rand(n, spec.continuous, generator=generator) * (high - low) + low
        if category is not None:
            cat = torch.as_tensor(category).expand(n).clone()
            if spec.categories == 0 or cat.min() < 0 or cat.max() >= spec.categories:
                raise ValueError(f"category must lie in [0, {spec.categories}), got {category}")
        if continuous is not None:
            cont = torch.as_tensor(continuous, dtype=torch.float32).expand(n, spec.continuous)
        one_hot = F.one_hot(cat, spec.categories).float() if spec.categories else torch.zeros(n, 0)
        return torch.cat([noise, one_hot, cont], 1).to(self.device)

    def latent_from_normal(self, noise: torch.Tensor) -> torch.Tensor:
        """The prior from N(0, 1) noise of the latent's width: the noise part as it is, the
        category as the argmax of its one-hot block's normals (uniform, by symmetry), each
        continuous code through the normal CDF onto its range (probability integral transform)."""
        s = self.codes
        z = noise.to(self.device)
        parts = [z[:, : s.noise_dim]]
        if self.params["noise"] == "uniform":
            parts = [torch.special.ndtr(parts[0]) * 2 - 1]
        if s.categories:
            block = z[:, s.noise_dim : s.noise_dim + s.categories]
            parts.append(F.one_hot(block.argmax(1), s.categories).to(z.dtype))
        low, high = s.continuous_range
        u = torch.special.ndtr(z[:, s.noise_dim + s.categories :])
        parts.append(u * (high - low) + low)
        return torch.cat(parts, 1)

    def split_latent(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, category index, continuous codes) of latents made by :meth:`sample_latent`."""
        s = self.codes
        one_hot = z[:, s.noise_dim : s.noise_dim + s.categories]
        cat = one_hot.argmax(1) if s.categories else torch.zeros(len(z), dtype=torch.long)
        return z[:, : s.noise_dim], cat, z[:, s.noise_dim + s.categories :]

    @torch.no_grad()
    def predict_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q's estimate for images: (categorical logits, continuous means)."""
        _, q = self.discriminator.forward_with_q(images)
        k = self.codes.categories
        return q[:, :k], q[:, k:]

    # --- training ---------------------------------------------------------------------
    def info_loss(self, q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """lambda * (CE of the categorical code + Gaussian NLL of the continuous codes)."""
        p, s = self.params, self.codes
        _, cat, cont = self.split_latent(z)
        loss = q.new_zeros(())
        if s.categories:
            loss = loss + p["info_lambda"] * F.cross_entropy(q[:, : s.categories], cat)
        if s.continuous:
            std = p["continuous_std"]
            mean = q[:, s.categories :]
            nll = 0.5 * ((cont - mean) / std) ** 2 + math.log(std) + 0.5 * math.log(2 * math.pi)
            loss = loss + p["info_lambda_continuous"] * nll.sum(1).mean()
        return loss

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        ones = torch.ones(n, device=real.device)
        zeros = torch.zeros(n, device=real.device)
        z = self.sample_latent(n).to(real.device)
        fake = self.generator(z)

        # D and Q: tell real from fake, and recover the codes of the fakes
        self.opt_d.zero_grad(set_to_none=True)
        d_real = self.discriminator(real)
        d_fake, q_fake = self.discriminator.forward_with_q(fake.detach())
        loss_gan_d = self.loss(d_real, ones) + self.loss(d_fake, zeros)
        loss_info_d = self.info_loss(q_fake, z)
        (loss_gan_d + loss_info_d).backward()
        self.opt_d.step()

        # G: fool D (non-saturating) and make the codes recoverable by Q
        self.opt_g.zero_grad(set_to_none=True)
        d_gen, q_gen = self.discriminator.forward_with_q(fake)
        loss_gan_g = self.loss(d_gen, ones)
        loss_info_g = self.info_loss(q_gen, z)
        (loss_gan_g + loss_info_g).backward()
        self.opt_g.step()

        out = {
            "loss_d": loss_gan_d.detach(),
            "loss_g": loss_gan_g.detach(),
            "loss_info": loss_info_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }
        if self.codes.categories:  # how often Q recovers the category of a fake, during training
            guess = q_gen[:, : self.codes.categories].detach().argmax(1)
            out["q_category_accuracy"] = (guess == self.split_latent(z)[1]).float().mean()
        return out

    def generator_layers(self) -> dict[str, nn.Module]:
        layers = {"fc": self.generator.fc}
        layers.update({f"block{i}": block for i, block in enumerate(self.generator.blocks)})
        return layers
