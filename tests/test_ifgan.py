"""IF-GAN: the partition Q, the energy and interpretation losses, concept swapping, the ablation."""

from __future__ import annotations

import functools

import pytest
import torch

from ganbench.architectures.ifgan import (
    IFGAN,
    FilterEnergy,
    align_labels,
    fit_isotropic_gmm,
    normalise_maps,
    realism_loss,
)
from ganbench.core.registry import create_architecture, create_dataset
from ganbench.datasets.base import DatasetSpec

GREY32 = DatasetSpec(name="grey32", version="test", image_size=32, channels=1)
NOISE = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def ifgan(width: int = 8, seed: int = 0, **params) -> IFGAN:
    torch.manual_seed(seed)
    return create_architecture("ifgan", GREY32, width=width, **params)


@functools.cache
def digits() -> torch.Tensor:
    return create_dataset("digits", image_size=32).split("train").images


def trained(
    steps: int, seed: int = 0, data: torch.Tensor | None = None, **params
) -> tuple[IFGAN, list[dict[str, float]]]:
    """An IF-GAN after ``steps`` steps of batch 32 on ``data`` (digits by default)."""
    data = digits() if data is None else data
    arch = ifgan(seed=seed, **{"fit_samples": 64, **params})
    g = torch.Generator().manual_seed(seed)
    logs = []
    for _ in range(steps):
        out = arch.train_step(data[torch.randint(0, len(data), (32,), generator=g)])
        logs.append({k: float(v) for k, v in out.items()})
    return arch, logs


def same_grouping(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labellings split the items identically (up to renaming the groups)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --- the partition Q ------------------------------------------------------------------------
def test_partition_covers_all_filters_with_c_groups():
    arch, _ = trained(3, data=NOISE, groups=5)
    q = arch.partition()
    filters = arch.filter_maps(arch.sample_latent(2)).shape[1]
    assert filters == 8  # the last hidden block (16x16 at 32x32) has `width` filters
    assert q.dtype == torch.long and q.shape == (filters,)
    assert q.min() >= 0 and q.max() < 5 and set(q.tolist()) == set(range(5))
    # Q is a buffer of the energy network: it is checkpointed with the weights
    assert torch.equal(arch.state_tensors()["energy.partition"], q)
    other = ifgan(groups=5, seed=1)
    other.load_state_tensors(arch.state_tensors())
    assert torch.equal(other.partition(), q)


def test_refit_runs_every_t_steps_and_leaves_the_network_unchanged():
    arch = ifgan(refit_every=2)
    z = arch.sample_latent(4, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in arch.generator.state_dict().items()}
    arch.refit_partition()
    assert all(torch.equal(before[k], v) for k, v in arch.generator.state_dict().items())
    arch.eval()
    with torch.no_grad():
        x = arch.generate(z)
    arch.refit_partition()
    with torch.no_grad():
        assert torch.equal(x, arch.generate(z))
    arch.train()
    fits = []
    original = arch.refit_partition
    arch.refit_partition = lambda: fits.append(int(arch.energy.step)) or original()
    data = NOISE[:16]
    for _ in range(5):
        arch.train_step(data)
    assert fits == [0, 2, 4] and int(arch.energy.step) == 5


def test_gmm_recovers_planted_groups_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    truth = torch.arange(24) % 4
    centres = torch.randn(4, 400, generator=g) * 3
    scales = torch.tensor([0.5, 1.0, 1.5, 2.0])  # one sigma_c per group
    x = centres[truth] + torch.randn(24, 400, generator=g) * scales[truth, None]
    torch.manual_seed(5)
    labels = fit_isotropic_gmm(x, 4)
    assert same_grouping(labels, truth)
    torch.manual_seed(5)
    assert torch.equal(fit_isotropic_gmm(x, 4), labels)


def test_gmm_fills_a_group_it_leaves_empty():
    g = torch.Generator().manual_seed(1)
    truth = torch.arange(12) % 3  # three clusters asked for four groups
    x = torch.randn(3, 50, generator=g)[truth] * 10 + torch.randn(12, 50, generator=g) * 0.1
    torch.manual_seed(0)
    labels = fit_isotropic_gmm(x, 4)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="cannot split"):
        fit_isotropic_gmm(x, 13)


def test_refit_labels_follow_the_previous_partition():
    old = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    renamed = torch.tensor([2, 2, 0, 0, 1, 1, 0])  # the same groups renamed, one filter moved
    assert align_labels(renamed, old, 3).tolist() == [0, 0, 1, 1, 2, 2, 1]


# --- the losses -----------------------------------------------------------------------------
def test_energy_and_interpretation_loss_follow_the_equations():
    torch.manual_seed(0)
    m, c, k, b = 5, 3, 4, 2
    energy = FilterEnergy(m, c, k)
    with torch.no_grad():
        energy.v.normal_()
        energy.partition.copy_(torch.tensor([0, 2, 2, 1, 0]))
    maps = torch.rand(b, m, k)
    w, q = energy.weight, energy.partition
    fbar = torch.stack([maps[:, q == cc].mean(1) for cc in range(c)], 1)  # (B, C, K)
    expected = torch.zeros(b)
    for j in range(m):
        for cc in range(c):
            expected += (w[j, cc] * maps[:, j] * fbar[:, cc]).sum(-1)  # Eq. 2
    (g,) = energy(maps)
    torch.testing.assert_close(g, expected / (m * k))
    lam = 0.3
    interp = sum(
        (-w[j, cc] if q[j] == cc else lam * w[j, cc]).sum() for j in range(m) for cc in range(c)
    )
    torch.testing.assert_close(energy.interpretation_loss(lam), interp / (m * k))


def test_realism_loss_is_zero_without_grouping_and_decreases_when_minimised():
    torch.manual_seed(0)
    arch = ifgan(groups=4)
    z = torch.randn(32, arch.latent_dim)
    q = arch.energy.partition
    maps = normalise_maps(arch.generator.features(z))
    loss, g_pos, g_neg = realism_loss(arch.energy, maps, q.clone())
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)  # Q~ = Q: nothing to tell apart
    opt = torch.optim.Adam([*arch.generator.parameters(), *arch.energy.parameters()], lr=1e-2)
    broken = q[torch.randperm(len(q))]
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss, _, _ = realism_loss(arch.energy, normalise_maps(arch.generator.features(z)), broken)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05 and losses[-1] < 0


def test_training_learns_w_from_q_and_lowers_the_realism_loss():
    _, logs = trained(40, groups=4, fit_samples=64)
    assert all(log["groups_used"] == 4 for log in logs)
    # L_interpret sets W's signs: + on each filter's own group, - on the others
    assert logs[-1]["w_own"] > 0.2 and logs[-1]["w_other"] < -0.2
    early = sum(log["loss_real"] for log in logs[5:15]) / 10
    late = sum(log["loss_real"] for log in logs[-10:]) / 10
    assert late < early and late < 0
    assert logs[-1]["energy_gap"] > 0  # maps agree with their own group more than a random one


def test_zero_lambdas_give_the_plain_dcgan():
    torch.manual_seed(7)
    plain = create_architecture("dcgan", GREY32, width=8)
    torch.manual_seed(7)
    ablation = create_architecture("ifgan", GREY32, width=8, lambda1=0.0, lambda2=0.0)
    batch = digits()[:16]
    torch.manual_seed(3)
    plain.train_step(batch)
    torch.manual_seed(3)
    out = ablation.train_step(batch)
    for name in ("generator", "discriminator"):
        mine = ablation.networks()[name].state_dict()
        for key, value in plain.networks()[name].state_dict().items():
            assert torch.equal(mine[key], value), f"{name}.{key}"
    assert torch.count_nonzero(ablation.energy.v) == 0  # W never trained
    assert "loss_real" in out and torch.isfinite(out["loss_real"])
    assert set(ablation.partition().tolist()) == set(range(6))  # Q still fitted


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="groups must lie in"):
        ifgan(groups=9)  # width 8: the layer has 8 filters
    with pytest.raises(ValueError, match="groups must lie in"):
        ifgan(groups=1)
    with pytest.raises(ValueError, match="layer must index"):
        ifgan(layer=3)
    early = ifgan(layer=1)  # the 8x8 block: 2*width filters
    assert early.filter_maps(early.sample_latent(2)).shape == (2, 16, 8, 8)


# --- capability: filter_groups ----------------------------------------------------------------
def test_group_maps_are_the_means_of_each_groups_normalised_maps():
    arch, _ = trained(3, data=NOISE, groups=5)
    arch.eval()
    with torch.no_grad():
        arch.energy.partition.copy_(torch.arange(8) % 4)  # group 4 left empty
    z = arch.sample_latent(3, torch.Generator().manual_seed(0))
    h = arch.filter_maps(z)
    rms = h.square().mean((-2, -1), keepdim=True).add(1e-6).sqrt()
    maps = arch.group_maps(z)
    assert maps.shape == (3, 5, 16, 16)  # C groups at the layer's 16x16
    for c in range(4):
        torch.testing.assert_close(maps[:, c], (h / rms)[:, torch.arange(8) % 4 == c].mean(1))
    assert torch.count_nonzero(maps[:, 4]) == 0


def test_swap_concept_exchanges_only_the_swapped_groups_maps():
    arch, _ = trained(3, data=NOISE, groups=4)
    arch.eval()
    g = torch.Generator().manual_seed(0)
    z1, z2 = arch.sample_latent(3, g), arch.sample_latent(3, g)
    h1, h2 = arch.filter_maps(z1), arch.filter_maps(z2)
    q = arch.partition()
    seen = []
    hook = arch.generator.to_image.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    try:
        for c in range(4):
            seen.clear()
            x1, x2 = arch.swap_concept(z1, z2, c)
            s1, s2 = seen  # what the layer after the interpretable one received
            inside = q == c
            assert inside.any()
            assert torch.equal(s1[:, inside], h2[:, inside])  # exchanged exactly
            assert torch.equal(s2[:, inside], h1[:, inside])
            assert torch.equal(s1[:, ~inside], h1[:, ~inside])  # the others as they were
            assert torch.equal(s2[:, ~inside], h2[:, ~inside])
            with torch.no_grad():
                assert torch.equal(x1, arch.generator.decode(s1))
                assert not torch.allclose(x1, arch.generate(z1))
    finally:
        hook.remove()
    with torch.no_grad():
        x1, x2 = arch.generate(z1), arch.generate(z2)
        # a latent swapped with itself is unchanged
        assert torch.equal(arch.swap_concept(z1, z1, 0)[0], x1)
        # a group with no filters swaps nothing
        arch.energy.partition.copy_(torch.arange(8) % 3)
        y1, y2 = arch.swap_concept(z1, z2, 3)
    assert torch.equal(y1, x1) and torch.equal(y2, x2)
    with pytest.raises(ValueError, match="group must lie"):
        arch.swap_concept(z1, z2, 4)
