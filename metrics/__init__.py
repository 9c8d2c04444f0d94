"""Sample-quality and two-sample metrics: one module per metric, registered by decorator."""
