"""InfoGAN with an IIC term on real data: a clustering variant of InfoGAN, beside the paper's.

InfoGAN's categorical code is learnt from G's own images: nothing ties it to the classes of
the real data, so on digits it often splits one digit over two code values, or merges two
(docs/infogan-code-accuracy.md). This variant adds the objective of Invariant Information
Clustering (Ji, Henriques & Vedaldi, ICCV 2019) on the real batch: D/Q also maximise the
mutual information I(Q(x); Q(t(x))) between Q's categorical code of a real image x and of a
randomly transformed copy t(x) (rotation up to ``iic_rotate`` degrees, scale up to
+-``iic_scale``, shift up to +-``iic_shift`` of the side). Q thereby partitions the real
data into clusters that survive small transformations, and InfoGAN's own term makes G draw
from the cluster its code names.

``info_augment = true`` (off by default) also has Q read the *categorical* code of G's
images from a transformed copy, in the D and the G step, so that G must carry the category
in something those transformations keep, as the real clusters do; the continuous codes are
read from the images as they are (a rotation-like code could not survive a random
rotation). Measured, it did not help: docs/infogan-code-accuracy.md.

Everything else, the networks, the latent, the optimisers and the capability ``codes``, is
:class:`~ganbench.architectures.infogan.InfoGAN`'s. ``iic_lambda = 0`` and ``info_augment =
false`` give the paper's training step back, bit for bit (tested).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ganbench.core.registry import register_architecture

from .infogan import InfoGAN


def iic_mutual_information(logits: torch.Tensor, logits_t: torch.Tensor) -> torch.Tensor:
    """I(c; c') of the categorical codes of images and of their transformed copies: the joint
    is the batch mean of the outer products of the two softmaxes, symmetrised (IIC Eq. 3)."""
    joint = (F.softmax(logits, 1).T @ F.softmax(logits_t, 1)) / logits.shape[0]
    joint = ((joint + joint.T) / 2).clamp_min(1e-8)
    marginal = joint.sum(1)
    return (joint * (joint.log() - marginal.log()[:, None] - marginal.log()[None, :])).sum()


@register_architecture("infogan-iic")
class InfoGANIIC(InfoGAN):
    """InfoGAN whose categorical code is also an IIC clustering of the real data."""

    version = "1"
    defaults = InfoGAN.defaults | {
        "iic_lambda": 1.0,  # weight of the IIC real-data term
        "info_augment": False,  # Q reads the categorical code of transformed fakes
        "iic_rotate": 15.0,  # the random transformation: rotation (degrees),
        "iic_scale": 0.1,  # scale, +- this fraction,
        "iic_shift": 0.1,  # shift, +- this fraction of the image side
    }

    def build(self) -> None:
        p = self.params
        if p["iic_lambda"] < 0:
            raise ValueError(f"infogan-iic: iic_lambda must be >= 0, got {p['iic_lambda']}")
        if p["categories"] < 2:
            raise ValueError("infogan-iic: needs a categorical code (categories >= 2)")
        if not 0 <= p["iic_scale"] < 1 or p["iic_rotate"] < 0 or p["iic_shift"] < 0:
            raise ValueError("infogan-iic: iic_rotate, iic_shift must be >= 0, iic_scale in [0, 1)")
        super().build()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """A random rotation, scaling and shift of each image; the area brought in from outside
        the image is background, -1 in the Tanh range."""
        p, n = self.params, x.shape[0]
        rand = torch.rand(n, 4, device=x.device) * 2 - 1  # drawn on x's device: no host sync
        angle = rand[:, 0] * math.radians(p["iic_rotate"])
        scale = 1 + rand[:, 1] * p["iic_scale"]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        shift = rand[:, 2:] * 2 * p["iic_shift"]  # [-1, 1] coordinates span twice the side
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1

    def q_of_fakes(self, fake: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Q's output for the info loss: with ``info_augment``, the categorical logits come
        from a transformed copy of the fakes, the continuous means from the fakes as they are."""
        if not self.params["info_augment"]:
            return q
        k = self.codes.categories
        q_t = self.discriminator.forward_with_q(self.transform(fake))[1]
        return torch.cat([q_t[:, :k], q[:, k:]], 1)

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        p, k = self.params, self.codes.categories
        n = real.shape[0]
        ones = torch.ones(n, device=real.device)
        zeros = torch.zeros(n, device=real.device)
        z = self.sample_latent(n).to(real.device)
        fake = self.generator(z)

        # D and Q: tell real from fake, recover the codes of the fakes, cluster the real data
        self.opt_d.zero_grad(set_to_none=True)
        out = {}
        if p["iic_lambda"] > 0:
            d_real, q_real = self.discriminator.forward_with_q(real)
            q_real_t = self.discriminator.forward_with_q(self.transform(real))[1]
            mi = iic_mutual_information(q_real[:, :k], q_real_t[:, :k])
            out["iic_mi"] = mi.detach()
        else:  # no passes for a term of weight 0: the paper's step, exactly
            d_real = self.discriminator(real)
        d_fake, q_fake = self.discriminator.forward_with_q(fake.detach())
        loss_gan_d = self.loss(d_real, ones) + self.loss(d_fake, zeros)
        loss_info_d = self.info_loss(self.q_of_fakes(fake.detach(), q_fake), z)
        if p["iic_lambda"] > 0:
            loss_info_d = loss_info_d - p["iic_lambda"] * mi
        (loss_gan_d + loss_info_d).backward()
        self.opt_d.step()

        # G: fool D (non-saturating) and make the codes recoverable by Q
        self.opt_g.zero_grad(set_to_none=True)
        d_gen, q_gen = self.discriminator.forward_with_q(fake)
        loss_gan_g = self.loss(d_gen, ones)
        loss_info_g = self.info_loss(self.q_of_fakes(fake, q_gen), z)
        (loss_gan_g + loss_info_g).backward()
        self.opt_g.step()

        guess = q_gen[:, :k].detach().argmax(1)  # on the fakes as they are
        return out | {
            "loss_d": loss_gan_d.detach(),
            "loss_g": loss_gan_g.detach(),
            "loss_info": loss_info_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
            "q_category_accuracy": (guess == self.split_latent(z)[1]).float().mean(),
        }
