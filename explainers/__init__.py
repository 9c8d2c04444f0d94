"""Explainers of generators and discriminators: one module per family, registered by decorator.

Empty for now: the explainer issues fill this registry.
"""
