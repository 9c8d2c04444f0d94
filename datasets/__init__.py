"""Datasets: one module per family, registered by decorator (``ganbench.core.registry.register_dataset``)."""

from .base import DatasetSpec, ImageDatasetBase, TensorImages

__all__ = ["DatasetSpec", "ImageDatasetBase", "TensorImages"]
