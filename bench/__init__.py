"""ganbench: GAN architectures crossed with metrics and explainers, run as timed reproducible trials."""

from ganbench.core.registry import (
    create_architecture,
    create_dataset,
    create_explainer,
    create_metric,
    list_architectures,
    list_datasets,
    list_explainers,
    list_metrics,
    register_architecture,
    register_dataset,
    register_explainer,
    register_metric,
)

__version__ = "0.1.0"

__all__ = [
    "create_architecture",
    "create_dataset",
    "create_explainer",
    "create_metric",
    "list_architectures",
    "list_datasets",
    "list_explainers",
    "list_metrics",
    "register_architecture",
    "register_dataset",
    "register_explainer",
    "register_metric",
]
