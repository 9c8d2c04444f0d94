"""The contract every registered architecture passes, parametrised over the registry (timm-style)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ganbench.checkpoint import load_checkpoint, save_checkpoint
from ganbench.datasets.base import DatasetSpec
from ganbench.registry import create_architecture, get_architecture, list_architectures

SPECS = [
    DatasetSpec(name="grey32", version="test", image_size=32, channels=1),
    DatasetSpec(name="rgb64", version="test", image_size=64, channels=3),
]


def small(name: str, spec: DatasetSpec, seed: int = 0):
    """The architecture at its smallest width, for speed; defaults otherwise."""
    torch.manual_seed(seed)
    params = {"width": 8} if "width" in get_architecture(name).defaults else {}
    return create_architecture(name, spec, **params)


ARCHS = list_architectures()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("name", ARCHS)
def test_generate_has_the_dataset_shape_and_range(name, spec):
    arch = small(name, spec).eval()
    with torch.no_grad():
        x = arch.generate(arch.sample_latent(5, torch.Generator().manual_seed(0)))
    assert x.shape == (5, spec.channels, spec.image_size, spec.image_size)
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("name", ARCHS)
def test_same_seed_same_network_and_samples(name):
    spec = SPECS[0]
    outs = []
    for _ in range(2):
        arch = small(name, spec, seed=3).eval()
        with torch.no_grad():
            outs.append(arch.generate(arch.sample_latent(4, torch.Generator().manual_seed(1))))
    assert torch.equal(outs[0], outs[1])
    other = small(name, spec, seed=4).eval()
    with torch.no_grad():
        assert not torch.equal(
            outs[0], other.generate(other.sample_latent(4, torch.Generator().manual_seed(1)))
        )


@pytest.mark.parametrize("name", ARCHS)
def test_state_round_trips_through_safetensors(name, tmp_path):
    spec = SPECS[0]
    a = small(name, spec, seed=0)
    a.train_step(
        torch.rand(8, 1, 32, 32) * 2 - 1
    )  # move weights and BatchNorm statistics off their init
    a.eval()
    save_checkpoint(a, tmp_path / "m.safetensors")
    b = small(name, spec, seed=1)
    load_checkpoint(b, tmp_path / "m.safetensors")
    b.eval()
    z = a.sample_latent(4, torch.Generator().manual_seed(0))
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(a.generate(z), b.generate(z))
        assert torch.equal(a.discriminator_logits(x), b.discriminator_logits(x))


@pytest.mark.parametrize("name", ARCHS)
def test_train_step_returns_finite_scalar_losses(name):
    arch = small(name, SPECS[0])
    losses = arch.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)
    assert losses and all(
        v.dim() == 0 and torch.isfinite(v) and not v.requires_grad for v in losses.values()
    )


@pytest.mark.parametrize("name", ARCHS)
def test_generator_layers_are_hookable_feature_maps(name):
    arch = small(name, SPECS[0]).eval()
    seen = {}
    layers = arch.generator_layers()
    assert layers, "generator_layers() must name at least one layer"
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
        for n, m in layers.items()
    ]
    with torch.no_grad():
        arch.generate(arch.sample_latent(2))
    for h in hooks:
        h.remove()
    assert set(seen) == set(layers)
    assert all(o.dim() == 4 and o.shape[0] == 2 for o in seen.values())


@pytest.mark.parametrize("name", ARCHS)
def test_discriminator_uses_each_module_once_and_gives_one_logit(name):
    """captum's DeepLIFT is wrong when a module (a ReLU, say) is called twice in one forward."""
    arch = small(name, SPECS[0]).eval()
    calls: Counter = Counter()
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: calls.update([n]))
        for n, m in arch.discriminator.named_modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        logits = arch.discriminator_logits(torch.rand(3, 1, 32, 32) * 2 - 1)
    for h in hooks:
        h.remove()
    assert logits.shape == (3,)
    reused = [n for n, c in calls.items() if c > 1]
    assert not reused, f"modules called more than once in one forward: {reused}"


@pytest.mark.parametrize("name", ARCHS)
def test_unknown_parameter_is_rejected(name):
    with pytest.raises(Exception, match="unknown key 'no_such_knob'"):
        create_architecture(name, SPECS[0], no_such_knob=1)


@pytest.mark.parametrize("name", ARCHS)
def test_deeplift_on_the_discriminator_is_complete(name):
    """captum's DeepLIFT explains every discriminator: attributions sum to about D(x) - D(x0)
    (its completeness property). It fails when an activation is functional or reused, or
    when a non-linearity's input also feeds a residual shortcut."""
    from captum.attr import DeepLift

    arch = small(name, SPECS[0])
    arch.train_step(torch.rand(16, 1, 32, 32) * 2 - 1)  # BatchNorm statistics off their init
    arch.eval()
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    baseline = torch.zeros_like(x)
    attr, delta = DeepLift(arch.discriminator).attribute(
        x, baselines=baseline, return_convergence_delta=True
    )
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    with torch.no_grad():
        gap = arch.discriminator(x).reshape(-1) - arch.discriminator(baseline).reshape(-1)
    # 10%: SAGAN's attention product and StyleGAN's minibatch std have no DeepLIFT rule,
    # so completeness holds only roughly there (exactly for DCGAN-like and COCO-GAN's D)
    assert (delta.abs() <= 0.1 * gap.abs() + 1e-3).all(), (delta, gap)
