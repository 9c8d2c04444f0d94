"""IF-GAN: the interpretable GAN of Li, Yao, Wang, Diao, Xu & Zhang (AAAI 2022).

The paper turns a GAN into one whose generator has, in a chosen intermediate layer with
M filters, a partition Q = {q^1, ..., q^M} of the filters into C groups, each group meant
to draw one visual concept consistently across images. No public implementation exists;
this is a first one, on the DCGAN backbone of :mod:`.dcgan` (its generator, discriminator,
initialisation, non-saturating loss and Adam 2e-4, betas (0.5, 0.999)). Equations are
numbered as in the paper's method section.

**Learning Q** (the mixture model of filters). For N latents z_1..z_N, filter j is
described by F^j = [f_1^j, ..., f_N^j], its feature maps over the batch. The paper fits

    P_theta(F^j) = sum_c P_theta(q^j = c) P_theta(F^j | q^j = c),
    f_i^j | q^j = c ~ N(mu_c, sigma_c^2 I),   theta = (p_c, mu_c, sigma_c^2),

by maximum likelihood and sets q^j = argmax_c P_theta(q^j = c | F^j). Here the fit is EM
for an isotropic ("spherical") Gaussian mixture over the M descriptors, in torch, with
k-means++ initialisation and a few restarts (best likelihood kept), all drawn from torch's
global RNG. It is refit every ``refit_every`` steps on ``fit_samples`` latents. Choices
the paper leaves open: each map is divided by its root-mean-square over positions before
the fit (so filters group by where and when they fire, not by their gain); a group left
empty after EM receives the filter farthest from its own group's mean (so all C groups
are used while M >= C); and the new groups are relabelled to overlap the previous ones as
much as possible (Hungarian matching), so W (below) keeps meaning the same group across
refits. Q lives in a buffer of the ``energy`` network, so checkpoints carry it.

**Realism loss, an energy-based model** (Eq. 1-2). Given Q, with f^j the map of filter j
(flattened, K positions) and fbar^c the mean map of group c,

    P_W(f_G(z) | Q) = exp(g_W(f_G(z))) / Z(W),
    g_W(f) = sum_j sum_c W_jc . (f^j * fbar^c),                  W_jc in R^K,
    L_real(W, G) = -1/N sum_i log P_W(f_G(z_i) | Q).

Here f^j is the filter's map divided by its RMS over positions (as for the fit), W is
bounded, W = tanh(V), and g is divided by M*K (a fixed temperature that keeps it O(1)
whatever the layer's size). Z(W) = integral of exp(g_W) is intractable; it is estimated
*contrastively*: the reference measure is the same batch's maps with the grouping broken,
i.e. the group means fbar^c recomputed under a random permutation Q~ of Q (group sizes
kept, filter-to-group links random), so

    log Z(W) ~= log 1/B sum_i exp(g_W(f_G(z_i)) under Q~),
    L_real  ~= -1/B sum_i g_W(f_G(z_i) | Q) + logmeanexp_i g_W(f_G(z_i) | Q~).

L_real is 0 when the grouping carries no information (Q and Q~ alike) and falls as the
maps agree with their own group's mean, as W weighs that agreement, more than with a
random group's. Both W and G minimise it (G through both terms): the generator is pushed
to make filters of one group fire together and groups fire apart.

**Interpretation loss on W** (the paper's L_interpret):

    L_interpret(W) = sum_j sum_c sum_k [ -1(q^j = c) W_jck + lambda1 1(q^j != c) W_jck ],

divided here by M*K, like g. It pulls W towards +1 on each filter's own group and -1 on
the others; L_real then shapes W within those bounds. The total objective is the paper's

    L = L_GAN + lambda1 L_real(W, G) + lambda2 L_interpret(W),

G and W minimising it in one backward pass (W by its own Adam, lr ``lr_w``: W is a
linear energy that must follow Q from one refit to the next, so it learns fast). With
lambda1 = lambda2 = 0 the network trains exactly as DCGAN (the ablation), while Q is
still fitted and L_real still reported, so explainers can score the plain network too.

Capability ``filter_groups``: :meth:`IFGAN.partition` (the LongTensor Q), :meth:`filter_maps`
(the layer's maps), :meth:`group_maps` (per-group mean maps fbar^c), and concept swapping,
:meth:`swap_concept`: the paper's exchange of a visual concept between two images, by
exchanging the feature maps of that group's filters between the two forward passes.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ganbench.core.registry import register_architecture

from .base import Architecture
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init

EPS = 1e-6


class IFGANGenerator(DCGANGenerator):
    """DCGAN's generator, split at the interpretable layer: ``features`` runs the blocks up to
    and including block ``layer``; ``decode`` runs the rest. ``forward`` is unchanged."""

    def __init__(
        self, latent_dim: int, width: int, channels: int, image_size: int, layer: int
    ) -> None:
        super().__init__(latent_dim, width, channels, image_size)
        n = len(self.blocks)
        if not -n <= layer < n:
            raise ValueError(f"IF-GAN: layer must index one of the {n} generator blocks")
        self.layer = layer % n

    def features(self, z: torch.Tensor) -> torch.Tensor:
        h = z.reshape(z.shape[0], -1, 1, 1)
        for block in self.blocks[: self.layer + 1]:
            h = block(h)
        return h

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[self.layer + 1 :]:
            h = block(h)
        return self.to_image(h)


class FilterEnergy(nn.Module):
    """The energy g_W of Eq. 2 with its weights W = tanh(V), (M, C, K), and the partition Q."""

    def __init__(self, filters: int, groups: int, positions: int) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.zeros(filters, groups, positions))
        # Q starts round-robin (every group used) until the first fit; ``step`` counts
        # training steps so the refit schedule survives a checkpoint
        self.register_buffer("partition", torch.arange(filters) % groups)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.groups = groups

    @property
    def weight(self) -> torch.Tensor:
        return torch.tanh(self.v)

    def membership(self, partition: torch.Tensor | None = None) -> torch.Tensor:
        """(M, C) one-hot of Q (or of ``partition``)."""
        q = self.partition if partition is None else partition
        return nn.functional.one_hot(q, self.groups).to(self.v.dtype)

    def group_means(self, maps: torch.Tensor, partition: torch.Tensor | None = None):
        """fbar: (B, C, K) mean of each group's maps (B, M, K); zero for an empty group."""
        member = self.membership(partition)
        return torch.einsum("bmk,mc->bck", maps, member / member.sum(0).clamp_min(1))

    def forward(self, maps: torch.Tensor, *partitions: torch.Tensor) -> list[torch.Tensor]:
        """g_W per image, divided by M*K, for normalised maps (B, M, K): one (B,) tensor for
        each partition given (Q itself when none is). sum_j W_jc . f^j does not depend on
        the partition, so it is computed once for all of them."""
        m, _, k = self.v.shape
        u = torch.einsum("bmk,mck->bck", maps, self.weight)
        return [
            (u * self.group_means(maps, q)).sum((1, 2)) / (m * k) for q in (partitions or (None,))
        ]

    def interpretation_loss(self, lambda1: float) -> torch.Tensor:
        """L_interpret: sum over j, c, k of -W on the own group, +lambda1 W elsewhere; / (M*K)."""
        member = self.membership()[..., None]
        w = self.weight
        m, _, k = w.shape
        return ((-member + lambda1 * (1 - member)) * w).sum() / (m * k)


def normalise_maps(h: torch.Tensor) -> torch.Tensor:
    """Maps (B, M, H, W) -> (B, M, K), each divided by its root-mean-square over positions."""
    flat = h.flatten(2)
    return flat / flat.square().mean(-1, keepdim=True).add(EPS).sqrt()


def realism_loss(
    energy: FilterEnergy, maps: torch.Tensor, broken: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contrastive L_real (see the module docstring): -mean g(Q) + logmeanexp g(Q~).

    ``maps`` are normalised (B, M, K); ``broken`` is the permuted partition Q~. Returns
    (loss, mean g under Q, mean g under Q~)."""
    g_pos, g_neg = energy(maps, energy.partition, broken)
    log_z = torch.logsumexp(g_neg, 0) - math.log(len(g_neg))
    return -g_pos.mean() + log_z, g_pos.mean(), g_neg.mean()


def fit_isotropic_gmm(
    x: torch.Tensor, groups: int, iters: int = 30, restarts: int = 3
) -> torch.Tensor:
    """EM for a mixture of N(mu_c, sigma_c^2 I) over the rows of ``x`` (M, D); labels (M,).

    The labels are argmax_c of the posterior P(q^j = c | x_j). Every mean is a weighted
    average of rows, mu_c = sum_j A_cj x_j, so the whole fit runs on the M x M Gram matrix
    (D may be large: N latents times K positions). k-means++ initialisation from torch's
    global RNG; the restart with the highest log-likelihood wins. A group left empty
    (while M >= C) receives the row farthest from its own group's mean.
    """
    x = x.double()
    m, d = x.shape
    if groups > m:
        raise ValueError(f"cannot split {m} filters into {groups} non-empty groups")
    gram = x @ x.T
    norms = gram.diagonal()

    def sq_dist(a: torch.Tensor) -> torch.Tensor:  # ||x_j - mu_c||^2, (M, C)
        ag = a @ gram
        return (norms[:, None] - 2 * ag.T + (ag * a).sum(1)[None]).clamp_min(0)

    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(restarts):
        a = _kmeans_pp(gram, groups)
        var = (sq_dist(a).min(1).values.mean() / d).clamp_min(EPS).expand(groups).clone()
        log_p = torch.full((groups,), -math.log(groups), dtype=x.dtype)
        for _ in range(iters):
            dist = sq_dist(a)
            log_joint = log_p - 0.5 * d * torch.log(2 * math.pi * var) - dist / (2 * var)
            log_lik = torch.logsumexp(log_joint, 1, keepdim=True)
            resp = (log_joint - log_lik).exp()  # E-step: P(q^j = c | F^j)
            weight = resp.sum(0)  # M-step
            keep = weight > 1e-8
            a = torch.where(keep[:, None], resp.T / weight.clamp_min(1e-12)[:, None], a)
            new_var = (resp * sq_dist(a)).sum(0) / (d * weight.clamp_min(1e-12))
            var = torch.where(keep, new_var.clamp_min(EPS), var)
            log_p = (weight / m).clamp_min(1e-12).log()
        dist = sq_dist(a)
        log_joint = log_p - 0.5 * d * torch.log(2 * math.pi * var) - dist / (2 * var)
        total = float(torch.logsumexp(log_joint, 1).sum())
        if best is None or total > best[0]:
            best = (total, log_joint.argmax(1), a)
    assert best is not None
    labels, a = best[1].clone(), best[2].clone()
    while True:  # fill empty groups from the largest spread of a group with >= 2 filters
        counts = torch.bincount(labels, minlength=groups)
        empty = (counts == 0).nonzero().flatten()
        if not len(empty):
            return labels
        spread = sq_dist(a).gather(1, labels[:, None]).squeeze(1)
        spread[counts[labels] < 2] = -1.0
        j = int(spread.argmax())
        labels[j] = empty[0]
        a[empty[0]] = 0.0
        a[empty[0], j] = 1.0


def _kmeans_pp(gram: torch.Tensor, groups: int) -> torch.Tensor:
    """k-means++ seeds as one-hot weights (C, M): the first row uniformly, then each with
    probability proportional to its squared distance from the nearest seed so far."""
    m = gram.shape[0]
    norms = gram.diagonal()
    idx = [int(torch.randint(0, m, ()))]
    for _ in range(1, groups):
        seeds = torch.tensor(idx)
        d2 = (norms[:, None] - 2 * gram[:, seeds] + norms[seeds][None]).clamp_min(0).min(1).values
        if float(d2.sum()) <= 0:
            idx.append(int(torch.randint(0, m, ())))
        else:
            idx.append(int(torch.multinomial(d2.float(), 1)))
    return nn.functional.one_hot(torch.tensor(idx), m).to(gram.dtype)


def align_labels(new: torch.Tensor, old: torch.Tensor, groups: int) -> torch.Tensor:
    """Relabel ``new`` so that it agrees with ``old`` on as many filters as possible."""
    overlap = torch.zeros(groups, groups, dtype=torch.long)
    overlap.index_put_((new.cpu(), old.cpu()), torch.ones(len(new), dtype=torch.long), True)
    rows, cols = linear_sum_assignment(overlap.numpy(), maximize=True)
    mapping = torch.empty(groups, dtype=torch.long)
    mapping[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return mapping.to(new.device)[new]


@register_architecture("ifgan")
class IFGAN(Architecture):
    """Interpretable GAN: DCGAN whose chosen generator layer learns C groups of filters."""

    version = "1"
    capabilities = frozenset({"layers", "filter_groups"})
    defaults = {
        "latent_dim": 100,
        "width": 64,
        "lr": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        # C: 6 keeps >= 5 filters a group at the smoke width (M = 32), so within-group
        # agreement averages over many pairs, and is of the order of the object concepts
        # of the shapes dataset (3 shapes, 6 colours); the paper varies C (its Fig. 4c)
        "groups": 6,
        "layer": -1,  # index of the generator block: -1 = the last hidden block (16x16 at 32x32)
        "refit_every": 100,  # T: steps between fits of Q
        "fit_samples": 256,  # N: latents whose maps describe the filters in a fit
        "fit_iters": 30,  # EM iterations per restart
        "fit_restarts": 3,
        "lambda1": 1.0,  # weight of L_real (and of the other-group term in L_interpret)
        "lambda2": 1.0,  # weight of L_interpret
        "lr_w": 1e-2,  # Adam learning rate of the energy's weights W
    }

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        self.generator = IFGANGenerator(
            p["latent_dim"], p["width"], self.channels, self.image_size, p["layer"]
        )
        self.discriminator = DCGANDiscriminator(p["width"], self.channels, self.image_size)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        with torch.no_grad():
            h = self.generator.eval().features(torch.zeros(1, self.latent_dim))
        self.generator.train()
        filters, side = h.shape[1], h.shape[-1]
        if not 2 <= p["groups"] <= filters:
            raise ValueError(f"IF-GAN: groups must lie in [2, {filters}] (the layer's filters)")
        if p["lambda1"] < 0 or p["lambda2"] < 0:
            raise ValueError("IF-GAN: lambda1 and lambda2 must be >= 0")
        self.energy = FilterEnergy(filters, p["groups"], side * side)
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr"], betas=betas)
        self.opt_w = torch.optim.Adam(self.energy.parameters(), lr=p["lr_w"], betas=betas)
        self.loss = nn.BCEWithLogitsLoss()

    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks(), "energy": self.energy}

    @property
    def interpretable(self) -> bool:
        return self.params["lambda1"] > 0 or self.params["lambda2"] > 0

    # --- training ---------------------------------------------------------------------
    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.params
        n = real.shape[0]
        ones = torch.ones(n, device=real.device)
        zeros = torch.zeros(n, device=real.device)
        h = self.generator.features(torch.randn(n, self.latent_dim, device=real.device))
        fake = self.generator.decode(h)

        self.opt_d.zero_grad(set_to_none=True)
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        loss_d = self.loss(d_real, ones) + self.loss(d_fake, zeros)
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        self.opt_w.zero_grad(set_to_none=True)
        loss_g = self.loss(self.discriminator(fake), ones)  # non-saturating
        q = self.energy.partition
        broken = q[torch.randperm(len(q), device=q.device)]  # Q~: the grouping broken
        if self.interpretable:
            loss_real, g_pos, g_neg = realism_loss(self.energy, normalise_maps(h), broken)
            loss_interpret = self.energy.interpretation_loss(p["lambda1"])
            total = loss_g + p["lambda1"] * loss_real + p["lambda2"] * loss_interpret
            total.backward()
            self.opt_g.step()
            self.opt_w.step()
        else:  # the plain network: DCGAN's step; L_real only reported
            loss_g.backward()
            self.opt_g.step()
            with torch.no_grad():
                loss_real, g_pos, g_neg = realism_loss(
                    self.energy, normalise_maps(h.detach()), broken
                )
                loss_interpret = self.energy.interpretation_loss(p["lambda1"])

        step = int(self.energy.step)
        if step % p["refit_every"] == 0:
            self.refit_partition()
        self.energy.step += 1

        w = self.energy.weight.detach()
        member = self.energy.membership().bool()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "loss_real": loss_real.detach(),
            "loss_interpret": loss_interpret.detach(),
            "energy_gap": (g_pos - g_neg).detach(),  # mean g under Q minus under Q~
            "w_own": w[member].mean(),
            "w_other": w[~member].mean(),
            "groups_used": torch.unique(self.energy.partition).numel() * torch.ones(()),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }

    @torch.no_grad()
    def refit_partition(self) -> torch.Tensor:
        """Fit Q (the isotropic Gaussian mixture over filters) on ``fit_samples`` latents.

        The maps are taken as in training (BatchNorm on batch statistics); the running
        statistics are restored afterwards, so a fit leaves the network as it was.
        """
        p = self.params
        saved = {k: v.clone() for k, v in self.generator.state_dict().items() if "running" in k}
        saved.update(
            {k: v.clone() for k, v in self.generator.state_dict().items() if "num_batches" in k}
        )
        was_training = self.generator.training
        self.generator.train()
        h = self.generator.features(torch.randn(p["fit_samples"], self.latent_dim).to(self.device))
        self.generator.load_state_dict(saved, strict=False)
        self.generator.train(was_training)
        descriptors = normalise_maps(h).transpose(0, 1).reshape(h.shape[1], -1)  # F^j: (M, N*K)
        labels = fit_isotropic_gmm(
            descriptors.cpu(), p["groups"], p["fit_iters"], p["fit_restarts"]
        )
        labels = align_labels(labels, self.energy.partition.cpu(), p["groups"])
        self.energy.partition.copy_(labels.to(self.energy.partition.device))
        return self.energy.partition.clone()

    def generator_layers(self) -> dict[str, nn.Module]:
        return {f"block{i}": block for i, block in enumerate(self.generator.blocks)}

    # --- capability: filter_groups ---------------------------------------------------
    def partition(self) -> torch.Tensor:
        """Q: the group of each of the layer's M filters, LongTensor (M,) in [0, C)."""
        return self.energy.partition.detach().clone()

    @property
    def layer_name(self) -> str:
        """The interpretable layer's name in :meth:`generator_layers`."""
        return f"block{self.generator.layer}"

    @torch.no_grad()
    def filter_maps(self, z: torch.Tensor) -> torch.Tensor:
        """The interpretable layer's feature maps, (B, M, h, w)."""
        return self.generator.features(z)

    @torch.no_grad()
    def group_maps(self, z: torch.Tensor) -> torch.Tensor:
        """fbar^c: each group's mean of its filters' RMS-normalised maps, (B, C, h, w)."""
        h = self.generator.features(z)
        return self.energy.group_means(normalise_maps(h)).reshape(h.shape[0], -1, *h.shape[-2:])

    @torch.no_grad()
    def swap_features(
        self, z1: torch.Tensor, z2: torch.Tensor, group: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's maps for z1 and z2 with group ``group``'s filters exchanged."""
        if not 0 <= group < self.params["groups"]:
            raise ValueError(f"group must lie in [0, {self.params['groups']}), got {group}")
        h1, h2 = self.generator.features(z1), self.generator.features(z2)
        swap = (self.energy.partition == group).view(1, -1, 1, 1)
        return torch.where(swap, h2, h1), torch.where(swap, h1, h2)

    @torch.no_grad()
    def swap_concept(
        self, z1: torch.Tensor, z2: torch.Tensor, group: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of z1 and z2 after exchanging group ``group``'s feature maps between them."""
        h1, h2 = self.swap_features(z1, z2, group)
        return self.generator.decode(h1), self.generator.decode(h2)
