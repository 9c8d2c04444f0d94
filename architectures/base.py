"""Architecture protocol: a GAN that owns its networks, optimisers and loss.

The harness (``ganbench.train``) owns the loop, the clock, the seeds, checkpoints,
progress and NaN detection; an architecture only says how one step goes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ganbench.core.params import resolve_params
from ganbench.core.specs import DatasetSpec


class Architecture:
    """Base class of every GAN in the suite.

    Subclasses set ``name`` (by the registry decorator), ``version`` (bump when a change
    alters results), ``capabilities`` and ``defaults``, and implement ``build``,
    ``train_step`` and ``generator_layers``. They must keep ``self.generator`` and
    ``self.discriminator`` as ``nn.Module`` attributes; activations are modules used once
    each, never functional calls, so that captum's DeepLIFT sees every non-linearity.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    defaults: ClassVar[dict[str, Any]] = {}

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int

    def __init__(self, spec: DatasetSpec, **params: Any) -> None:
        self.spec = spec
        self.params = resolve_params(self.defaults, params, f"architecture {self.name!r}")
        self.image_size = spec.image_size
        self.channels = spec.channels
        self.device = torch.device("cpu")
        self.build()

    # --- to implement -------------------------------------------------------------
    def build(self) -> None:
        """Create ``generator``, ``discriminator``, ``latent_dim`` and the optimisers."""
        raise NotImplementedError

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch of real images; returns detached scalar losses."""
        raise NotImplementedError

    def generator_layers(self) -> dict[str, nn.Module]:
        """Named generator modules whose outputs are feature maps (for dissection and intervention)."""
        raise NotImplementedError

    # --- shared behaviour ---------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents; drawn on the CPU from ``generator`` so they match across devices."""
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    @classmethod
    def has_gaussian_latent(cls) -> bool:
        """Whether latents are i.i.d. N(0, 1): ``sample_latent`` is not overridden."""
        return cls.sample_latent is Architecture.sample_latent

    def latent_from_normal(self, noise: torch.Tensor) -> torch.Tensor:
        """Latents distributed as :meth:`sample_latent`'s, made from i.i.d. N(0, 1) ``noise``
        of shape (n, latent_dim): how a sampler that only draws Gaussian noise (torch-fidelity's
        generator input) reaches the model's own prior. The identity for a Gaussian prior;
        an architecture with another prior overrides it (the contract tests compare the two)."""
        return noise.to(self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], shape (n, channels, size, size)."""
        return self.generator(z)

    def discriminator_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Realness logit per image, shape (n,)."""
        return self.discriminator(x).reshape(x.shape[0])

    def networks(self) -> dict[str, nn.Module]:
        """Every module whose weights are saved in a checkpoint."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def to(self, device: str | torch.device) -> Architecture:
        self.device = torch.device(device)
        for net in self.networks().values():
            net.to(self.device)
        for opt in self.optimizers():
            for state in opt.state.values():
                for k, v in state.items():
                    if isinstance(v, torch.Tensor):
                        state[k] = v.to(self.device)
        return self

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)]

    def train(self, mode: bool = True) -> Architecture:
        for net in self.networks().values():
            net.train(mode)
        return self

    def eval(self) -> Architecture:
        return self.train(False)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """All network weights and buffers as one flat dict (safetensors-ready)."""
        out = {}
        for prefix, net in self.networks().items():
            for key, value in net.state_dict().items():
                out[f"{prefix}.{key}"] = value.detach().cpu().contiguous().clone()
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for prefix, net in self.networks().items():
            part = {
                k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")
            }
            net.load_state_dict(part, strict=True)
        self.to(self.device)
