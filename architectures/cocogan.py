"""COCO-GAN (Lin, Chang, Chen, Juan, Wei & Chen, ICCV 2019): generation by parts via
conditional coordinating.

The generator never draws a whole image: it draws a *micro patch* for a latent z and a
spatial coordinate c, and a full image is the concatenation of the micro patches of one z
at every coordinate of a regular grid. The discriminator only sees *macro patches* (2x2
neighbouring micro patches), real ones cropped from real images at the same place.

Geometry, for an S x S image (S = 32 or 64): micro patches are S/4 x S/4, macro patches
S/2 x S/2, the full image is 4 x 4 micro patches. Coordinates are (row, column) pairs on
regular grids in [-1, 1], the paper's Euclidean coordinate system as in the authors' code
(their "N2M2" configurations: a macro patch is 2x2 micro patches, the full image 2x2
macro patches in area):

* micro coordinates: the 4 x 4 grid {-1, -1/3, 1/3, 1}^2, one per micro patch;
* macro coordinates: the 3 x 3 grid {-1, 0, 1}^2 of *overlapping* macro positions with a
  stride of one micro patch (S/4), so that D also judges the seams between the
  non-overlapping 2x2 tiling's patches; the macro patch at (i, j) in {0, 1, 2}^2 is made of
  the micro patches (i + a, j + b), a, b in {0, 1}.

Training (paper Sec. 3, Eq. 1-4; hyperparameters from the authors' CelebA 64x64 config):

* z ~ U(-1, 1)^128. Per image a macro position is drawn uniformly; G draws its 4 micro
  patches from the same z and the 4 micro coordinates, which are assembled into a macro
  patch; the real macro patch is cropped from the real image at the same position c'.
* G: [z, c] -> spectrally normalised linear map to a 2 x 2 map with 16w channels, residual
  up-blocks (conditional BatchNorm - ReLU - nearest 2x up - 3x3 conv - conditional
  BatchNorm - ReLU - 3x3 conv, plus an up-sampled 1x1-conv shortcut) with 8w, 4w (, 2w)
  channels to the micro-patch size, then BatchNorm - ReLU - 3x3 conv - Tanh. Conditional
  BatchNorm normalises by the batch statistics in training and by running averages
  (momentum 0.01, the code's 0.99 decay) in eval mode, and then applies a per-sample gain
  and bias, each an affine map of the concatenation [z, c].
* D(x', c'): residual down-blocks (ReLU - 3x3 conv - ReLU - 3x3 conv - 2x2 average pool,
  1x1-conv shortcut; the first block has no leading ReLU, the last does not pool) with
  widths [2w,] 4w, 8w, 8w, ReLU, global sum pooling to features h, and
  D = <u, h> + b + <embed(c'), h> -- the projection discriminator (Miyato & Koyama 2018)
  with a linear embedding of the coordinate. An auxiliary head A (linear to 128 -
  BatchNorm - LeakyReLU(0.2) - linear to 2 - Tanh) regresses c' from h.
* Losses (WGAN-GP, paper Eq. 1-3): L_W = E[D(x', c')] - E[D(G(z, c), c')], gradient
  penalty lambda E[(||grad D(x_hat, c')|| - 1)^2] with lambda = 10 on macro patches
  x_hat = x' + alpha (G - x'), and the spatial consistency loss
  L_S = E[||c' - A(x')||^2] weighted by alpha = 100 (the code's ``coord_loss_w``; the MSE
  averages over the two coordinates). D minimises -L_W + GP + 100 (L_S(real) + L_S(fake));
  G minimises -E[D(G(z, c), c')] + 100 L_S(fake).
  The weight 100 suits the paper's aligned faces, where a patch shows its place. Where it
  does not (digits' blank borders, shapes at random places: the real patches' coordinate
  MSE stays near 0.2), G's 100 L_S(fake) outweighs the critic and G draws the one
  position-coded image per place that A reads best, whatever z: measured on digits (width
  8, 1,500 steps, seed 0), the mean pairwise distance of samples is 9.5 at 100 and 17.9 at
  1 (real digits 19.0), and only at 1 are they digits. The shipped configs set
  ``coord_weight = 1``; the default stays the paper's.
* Adam, betas (0, 0.999), lr 1e-4 for G and 4e-4 for D (TTUR), one D step per G step
  (``G_update_period = D_update_period = 1`` in the code).
* Spectral normalisation on every convolution and linear layer of G and D, as in the code
  (the conditional-BatchNorm maps excepted).

Deviations from the authors' code, all where it departs from the paper or from standard
practice: the gradient penalty takes one alpha per sample (the code draws one per pixel),
the gradient norm over the whole patch (the code sums over one spatial axis only), and
the conditional critic D(., c') (the code drops the projection term inside the penalty);
batch normalisation divides by sqrt(var + eps) (the code squares the variance); the gain
of conditional BatchNorm starts near 1 (a bias of 1 on its affine map).

The full image at inference (eval mode) is the concatenation of the 16 micro patches of
one z: every micro patch depends on (z, c) only, so a patch generated alone equals the
same patch inside the full image. In training mode BatchNorm uses batch statistics and
patches of one batch are not independent.

Capability ``coordinates``: :meth:`CocoGAN.micro_coordinates` and
:meth:`CocoGAN.macro_coordinates` give the grids, :meth:`CocoGAN.generate_patch` draws the
micro patch of any coordinate (also off the grid), :meth:`CocoGAN.generate_full` (=
``generate``) the full image, :meth:`CocoGAN.macro_patches` crops the 9 macro patches of
images, and :meth:`CocoGAN.predict_coordinates` is D's auxiliary coordinate regressor.

``discriminator_logits(x)`` for full images crops all 9 macro patches of x (folded into
the batch, so every module runs once per forward), scores each with the realness logit
plus the projection term at its known coordinate, and averages the 9 scores per image.
``generator_layers()`` are the generator blocks' outputs with the micro-patch feature
maps assembled into full-image feature maps (n, C, H, W) in the data path: an edit of
such a map changes the patches that are drawn from it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.core.registry import register_architecture

from .base import Architecture

GRID = 4  # micro patches per side of the full image
MACRO = 2  # micro patches per side of a macro patch
POSITIONS = GRID - MACRO + 1  # macro positions per side (overlapping, stride one micro patch)
STEM = 2  # side of the generator's first feature map


def _patch_sizes(image_size: int) -> tuple[int, int]:
    micro = image_size // GRID
    if image_size not in (16, 32, 64, 128, 256):
        raise ValueError(
            f"COCO-GAN needs an image size of 16, 32, 64, 128 or 256, got {image_size}"
        )
    return micro, MACRO * micro


def coordinate_axis(n: int) -> torch.Tensor:
    """``n`` evenly spaced coordinates from -1 to 1."""
    return torch.linspace(-1.0, 1.0, n)


def coordinate_grid(n: int) -> torch.Tensor:
    """The n x n grid of (row, column) coordinates in raster order, shape (n * n, 2)."""
    axis = coordinate_axis(n)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)


def assemble(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """(n * grid^2, C, h, w) patches in raster order -> (n, C, grid * h, grid * w)."""
    _, c, h, w = patches.shape
    x = patches.reshape(-1, grid, grid, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(-1, c, grid * h, grid * w)


def split(images: torch.Tensor, grid: int) -> torch.Tensor:
    """The inverse of :func:`assemble`: (n, C, grid * h, grid * w) -> (n * grid^2, C, h, w)."""
    n, c, hh, ww = images.shape
    h, w = hh // grid, ww // grid
    x = images.reshape(n, c, grid, h, grid, w).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n * grid * grid, c, h, w)


class Assemble(nn.Module):
    """Micro-patch maps of one z each -> the full-image map (a hookable layer output)."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return assemble(patches, self.grid)


def sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, then gain(cond) * x + bias(cond) per sample."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False, momentum=0.01)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        nn.init.ones_(self.gain.bias)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = self.gain(cond)[:, :, None, None]
        bias = self.bias(cond)[:, :, None, None]
        return self.norm(x) * gain + bias


class GeneratorBlock(nn.Module):
    """Residual up-block with conditional BatchNorm (the code's ``g_residual_block``)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.cbn1 = ConditionalBatchNorm2d(c_in, cond_dim)
        self.relu1 = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.cbn2 = ConditionalBatchNorm2d(c_out, cond_dim)
        self.relu2 = nn.ReLU()
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = sn(nn.Conv2d(c_in, c_out, 1))
        self.up_shortcut = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.up(self.relu1(self.cbn1(x, cond))))
        h = self.conv2(self.relu2(self.cbn2(h, cond)))
        # a 1x1 convolution commutes with nearest up-sampling: convolve first, 4x cheaper
        return h + self.up_shortcut(self.shortcut(x))


class CocoGenerator(nn.Module):
    """G(z, c) -> micro patch; ``forward(z)`` draws and assembles the full image."""

    def __init__(self, latent_dim: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        micro, _ = _patch_sizes(image_size)
        n_blocks = int(math.log2(micro // STEM))
        mults = ([8, 4, 2] + [1] * n_blocks)[:n_blocks]  # the code's ngf_mult_list
        cond_dim = latent_dim + 2
        self.stem_channels = 16 * width
        self.stem = sn(nn.Linear(cond_dim, self.stem_channels * STEM * STEM))
        c_in, blocks = self.stem_channels, []
        for mult in mults:
            blocks.append(GeneratorBlock(c_in, mult * width, cond_dim))
            c_in = mult * width
        self.blocks = nn.ModuleList(blocks)
        self.assemblies = nn.ModuleList(Assemble(GRID) for _ in blocks)
        self.to_image = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            sn(nn.Conv2d(c_in, channels, 3, 1, 1)),
            nn.Tanh(),
        )
        self.assemble_image = Assemble(GRID)
        self.register_buffer("micro_grid", coordinate_grid(GRID), persistent=False)

    def micro_patches(
        self, z: torch.Tensor, coords: torch.Tensor, full_grid: bool = False
    ) -> torch.Tensor:
        """G(z, c) for each row of z (n, latent) and coords (n, 2): (n, C, micro, micro).

        ``full_grid``: the rows are the 16 micro coordinates (raster order) of each latent in
        turn; the blocks' outputs then pass through full-image assemblies (hook points).
        """
        cond = torch.cat([z, coords.to(z.dtype)], dim=1)
        h = self.stem(cond).reshape(-1, self.stem_channels, STEM, STEM)
        for block, assembly in zip(self.blocks, self.assemblies, strict=True):
            h = block(h, cond)
            if full_grid:
                h = split(assembly(h), GRID)
        return self.to_image(h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, cells = z.shape[0], GRID * GRID
        coords = self.micro_grid.repeat(n, 1)
        patches = self.micro_patches(z.repeat_interleave(cells, dim=0), coords, full_grid=True)
        return self.assemble_image(patches)


class DiscriminatorBlock(nn.Module):
    """Residual down-block (the code's ``d_residual_block``)."""

    def __init__(self, c_in: int, c_out: int, head: bool, resize: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [] if head else [nn.ReLU()]
        layers += [sn(nn.Conv2d(c_in, c_out, 3, 1, 1)), nn.ReLU()]
        layers.append(sn(nn.Conv2d(c_out, c_out, 3, 1, 1)))
        if resize:
            layers.append(nn.AvgPool2d(2))
        self.main = nn.Sequential(*layers)
        shortcut: list[nn.Module] = [nn.AvgPool2d(2)] if resize else []
        shortcut.append(sn(nn.Conv2d(c_in, c_out, 1)))
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # captum's DeepLIFT rescales the gradient at a non-linearity's input tensor; were
        # that tensor shared with the shortcut, the shortcut's gradient would be rescaled
        # too (attributions then miss D(x) - D(baseline) by far). The main branch gets its
        # own copy of x.
        return self.main(x.clone()) + self.shortcut(x)


class CocoDiscriminator(nn.Module):
    """Macro-patch critic with a coordinate projection and a coordinate regressor.

    ``forward(x)`` takes full images: the mean over the 9 macro positions of
    realness + projection. :meth:`score` judges given macro patches at given coordinates.
    """

    def __init__(self, width: int, channels: int, image_size: int, aux_dim: int) -> None:
        super().__init__()
        self.micro, self.macro = _patch_sizes(image_size)
        n_blocks = int(math.log2(self.macro)) - 1
        mults = ([1] * n_blocks + [2, 4, 8, 8])[-n_blocks:]  # the code's ndf_mult_list
        blocks, c_in = [], channels
        for i, mult in enumerate(mults):
            last = i == len(mults) - 1
            blocks.append(DiscriminatorBlock(c_in, mult * width, head=i == 0, resize=not last))
            c_in = mult * width
        self.trunk = nn.Sequential(*blocks, nn.ReLU())
        self.realness = sn(nn.Linear(c_in, 1))
        self.embed = sn(nn.Linear(2, c_in))
        self.coordinate_head = nn.Sequential(
            sn(nn.Linear(c_in, aux_dim)),
            nn.BatchNorm1d(aux_dim),
            nn.LeakyReLU(0.2),
            sn(nn.Linear(aux_dim, 2)),
            nn.Tanh(),
        )
        self.register_buffer("macro_grid", coordinate_grid(POSITIONS), persistent=False)

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        return self.trunk(patches).sum(dim=(2, 3))  # global sum pooling

    def critic(self, h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Realness logit plus the projection <embed(c), h>, shape (n,)."""
        return self.realness(h).squeeze(1) + (self.embed(coords.to(h.dtype)) * h).sum(dim=1)

    def score(
        self, patches: torch.Tensor, coords: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(critic value (n,), predicted coordinate (n, 2)) of macro patches at ``coords``."""
        h = self.features(patches)
        return self.critic(h, coords), self.coordinate_head(h)

    def crop(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The macro patch of each image at its grid position ``index`` (n, 2) in {0, 1, 2}."""
        windows = images.unfold(2, self.macro, self.micro).unfold(3, self.macro, self.micro)
        return windows[torch.arange(images.shape[0]), :, index[:, 0], index[:, 1]]

    def crop_all(self, images: torch.Tensor) -> torch.Tensor:
        """All 9 macro patches, (n * 9, C, macro, macro), raster order per image."""
        n, c = images.shape[:2]
        windows = images.unfold(2, self.macro, self.micro).unfold(3, self.macro, self.micro)
        return windows.permute(0, 2, 3, 1, 4, 5).reshape(n * POSITIONS**2, c, *windows.shape[-2:])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        h = self.features(self.crop_all(images))
        scores = self.critic(h, self.macro_grid.repeat(n, 1))
        return scores.reshape(n, POSITIONS**2).mean(dim=1)


@register_architecture("cocogan")
class CocoGAN(Architecture):
    """COCO-GAN: micro patches from [z, coordinate], a macro-patch WGAN-GP critic."""

    version = "1"
    capabilities = frozenset({"layers", "coordinates"})
    defaults = {
        "latent_dim": 128,
        "width": 64,  # the code's ngf_base = ndf_base
        "aux_dim": 128,
        "lr_g": 1e-4,
        "lr_d": 4e-4,
        "beta1": 0.0,
        "beta2": 0.999,
        "gp_lambda": 10.0,
        "coord_weight": 100.0,
    }

    def build(self) -> None:
        p = self.params
        self.latent_dim = p["latent_dim"]
        self.micro_size, self.macro_size = _patch_sizes(self.image_size)
        self.generator = CocoGenerator(p["latent_dim"], p["width"], self.channels, self.image_size)
        self.discriminator = CocoDiscriminator(
            p["width"], self.channels, self.image_size, p["aux_dim"]
        )
        betas = (p["beta1"], p["beta2"])
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=p["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr_d"], betas=betas)
        # micro-patch offsets inside a macro patch, raster order
        self._offsets = torch.tensor([[a, b] for a in range(MACRO) for b in range(MACRO)])

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ U(-1, 1), as in the paper."""
        return (torch.rand(n, self.latent_dim, generator=generator) * 2 - 1).to(self.device)

    def latent_from_normal(self, noise: torch.Tensor) -> torch.Tensor:
        """U(-1, 1) from N(0, 1) noise by the normal CDF (probability integral transform)."""
        return torch.special.ndtr(noise.to(self.device)) * 2 - 1

    # --- training --------------------------------------------------------------------
    def _fake_macro(self, z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Macro patches at grid positions ``index`` (n, 2), each from 2x2 micro patches of z."""
        cells = (index[:, None, :] + self._offsets[None].to(index.device)).reshape(-1, 2)
        axis = coordinate_axis(GRID).to(z.device)
        coords = axis[cells]
        patches = self.generator.micro_patches(z.repeat_interleave(MACRO * MACRO, 0), coords)
        return assemble(patches, MACRO)

    def _gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, coords: torch.Tensor
    ) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (real + alpha * (fake - real)).requires_grad_(True)
        d = self.discriminator
        out = d.critic(d.features(mixed), coords)
        (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        p, d = self.params, self.discriminator
        n = real.shape[0]
        z = torch.rand(n, self.latent_dim, device=real.device) * 2 - 1
        index = torch.randint(0, POSITIONS, (n, 2), device=real.device)
        coords = coordinate_axis(POSITIONS).to(real.device)[index]
        real_macro = d.crop(real, index)
        fake_macro = self._fake_macro(z, index)

        self.opt_d.zero_grad(set_to_none=True)
        d_real, c_real = d.score(real_macro, coords)
        d_fake, c_fake = d.score(fake_macro.detach(), coords)
        gp = self._gradient_penalty(real_macro, fake_macro.detach(), coords)
        mse_real = ((c_real - coords) ** 2).mean()
        mse_fake = ((c_fake - coords) ** 2).mean()
        w_dist = d_real.mean() - d_fake.mean()
        loss_d = -w_dist + p["gp_lambda"] * gp + p["coord_weight"] * (mse_real + mse_fake)
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        try:
            g_fake, c_fake_g = d.score(fake_macro, coords)
            mse_g = ((c_fake_g - coords) ** 2).mean()
            loss_g = -g_fake.mean() + p["coord_weight"] * mse_g
            loss_g.backward()
        finally:
            d.requires_grad_(True)
        self.opt_g.step()

        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "w_dist": w_dist.detach(),
            "gp": gp.detach(),
            "coord_mse_real": mse_real.detach(),
            "coord_mse_fake": mse_fake.detach(),
        }

    def generator_layers(self) -> dict[str, nn.Module]:
        """Each generator block's output, assembled over the 4x4 micro patches of one z."""
        return {f"block{i}": m for i, m in enumerate(self.generator.assemblies)}

    # --- capability: coordinates -----------------------------------------------------
    def micro_coordinates(self) -> torch.Tensor:
        """The 16 micro-patch coordinates (row, column) in raster order, shape (16, 2)."""
        return self.generator.micro_grid.clone()

    def macro_coordinates(self) -> torch.Tensor:
        """The 9 macro-patch coordinates (row, column) in raster order, shape (9, 2)."""
        return self.discriminator.macro_grid.clone()

    def generate_patch(self, z: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """The micro patch of each z at ``coord`` ((2,) for all, or (n, 2)), any point of
        [-1, 1]^2 or beyond; shape (n, channels, S/4, S/4). Independent of other patches in
        eval mode only."""
        coord = torch.as_tensor(coord, dtype=z.dtype, device=z.device)
        coords = coord.expand(z.shape[0], 2) if coord.dim() == 1 else coord
        return self.generator.micro_patches(z, coords)

    def generate_full(self, z: torch.Tensor) -> torch.Tensor:
        """The full image: the 4x4 micro patches of each z, concatenated (= ``generate``)."""
        return self.generate(z)

    def macro_patches(self, images: torch.Tensor) -> torch.Tensor:
        """The 9 macro patches of images, (n, 9, C, S/2, S/2), in macro-coordinate order."""
        crops = self.discriminator.crop_all(images)
        return crops.reshape(images.shape[0], POSITIONS**2, *crops.shape[1:])

    def predict_coordinates(self, patches: torch.Tensor) -> torch.Tensor:
        """D's auxiliary head: the coordinate it regresses for macro patches, (n, 2)."""
        return self.discriminator.coordinate_head(self.discriminator.features(patches))
