"""Explainers of generators and discriminators: one module per family, registered by decorator.

Intrinsic explanations so far: ``codes`` (InfoGAN's categorical and continuous codes) and
``attention`` (SAGAN's self-attention maps).
"""
