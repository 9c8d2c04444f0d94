"""GAN architectures: one module per architecture, registered by decorator."""

from .base import Architecture

__all__ = ["Architecture"]
