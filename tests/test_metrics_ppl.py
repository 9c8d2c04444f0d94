"""Perceptual path length on planted generators whose PPL is known, against torch-fidelity's
own PPL, and on every registered architecture.

A linear generator G(z) = M z seen through linear features φ(x) = Wᵀx has, along a lerp
path, d/ε² = ||A (z2 - z1)||² exactly for every t (A = Wᵀ M), whose expectation over
z1, z2 ~ N(0, I) is 2 ||A||_F² and variance 8 Σ λ² (λ the eigenvalues of AᵀA).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.architectures.base import Architecture
from ganbench.core.errors import ConfigError, NotApplicable
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import (
    create_architecture,
    create_dataset,
    create_metric,
    get_architecture,
    get_metric,
    list_architectures,
)
from ganbench.metrics.ppl import (
    PAIRS_STREAM,
    LatentPart,
    lerp,
    path_lengths,
    slerp,
    trim,
)
from tests.conftest import Projection, eval_context

D = 8  # latent size of the planted generators
PIXELS = 32 * 32


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits")


class Planted(Architecture):
    """A stand-in architecture around a generator module, with the base class's N(0, I)
    prior (so ``interpolation = "auto"`` slerps); no networks are built."""

    capabilities = frozenset({"layers"})

    def __init__(self, module: nn.Module, latent_dim: int = D, scale: float = 1.0) -> None:
        self.module, self.latent_dim, self.scale = module, latent_dim, scale
        self.device, self.params = torch.device("cpu"), {}

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return (self.module(z) * self.scale).reshape(len(z), 1, 32, 32)


class Linear(nn.Module):
    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.m = m  # (PIXELS, D)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.m.t().to(z.dtype)


class LinearFeatures:
    """φ(x) = Wᵀ x in the dtype of x (a float64 reference runs entirely in float64)."""

    def __init__(self, w: torch.Tensor) -> None:
        self.w = w

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.to(x.dtype)


def small_matrix(seed: int = 0, scale: float = 0.01) -> torch.Tensor:
    """Small enough that |G(z)| stays far below the clamp at 1 along every path."""
    return torch.randn(PIXELS, D, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.fixture(scope="module")
def planted():
    m = small_matrix()
    domain = Projection(PIXELS, 16)
    a = (domain.w.t() @ m).double()  # (16, D): φ(G(z)) = A z
    return m, domain, a


def run(metric: str, model, dataset, tmp_path, domain, **params) -> dict[str, float]:
    return evaluate_and_write(
        create_metric(metric, **params), eval_context(model, dataset, tmp_path, domain=domain)
    )


def same_draws(model, dataset, tmp_path, n):
    """The latent pairs and t the evaluator draws (the same trial seed and stream)."""
    g = eval_context(model, dataset, tmp_path).rng(PAIRS_STREAM)
    z1, z2 = model.sample_latent(n, generator=g), model.sample_latent(n, generator=g)
    return z1, z2, torch.rand(n, generator=g, dtype=torch.float64)


# --- planted generators with a known PPL -------------------------------------------------------
def test_lerp_path_of_a_linear_generator_is_exact_per_pair(planted):
    m, domain, a = planted
    g = torch.Generator().manual_seed(3)
    z1, z2, t = torch.randn(300, D, generator=g), torch.randn(300, D, generator=g), torch.rand(300)
    got = path_lengths(Linear(m), domain.features, z1, z2, t, epsilon=1e-4, batch_size=64)
    exact = ((z2 - z1).double() @ a.t()).square().sum(1)
    assert got.dtype == torch.float64 and got.shape == (300,)
    # float32 rounding at ε = 1e-4: ~6e-4 per pair (median), under 1% at worst, ~1e-5 on the mean
    rel = (got / exact - 1).abs()
    assert rel.median() < 2e-3 and rel.max() < 2e-2, (rel.median(), rel.max())
    assert float(got.mean()) == pytest.approx(float(exact.mean()), rel=1e-3)


def test_evaluator_matches_the_closed_form_expectation(planted, digits, tmp_path):
    m, domain, a = planted
    model = Planted(Linear(m))
    n = 2000
    out = run(
        "ppl",
        model,
        digits,
        tmp_path,
        domain,
        n=n,
        interpolation="lerp",
        discard_lower=0.0,
        discard_upper=100.0,
        batch_size=500,
    )
    lam = torch.linalg.eigvalsh(a.t() @ a)
    expected, se = 2 * float(lam.sum()), math.sqrt(8 * float(lam.square().sum()) / n)
    assert out["ppl_n"] == n
    assert abs(out["ppl"] - expected) < 4 * se, (out["ppl"], expected, se)
    report = json.loads((tmp_path / "ppl.json").read_text())
    assert report["interpolation"][0]["method"] == "lerp" and report["kept"] == n


def test_trimming_drops_the_outer_percentiles_like_the_official_code(planted, digits, tmp_path):
    m, domain, a = planted
    model = Planted(Linear(m))
    out = run("ppl", model, digits, tmp_path, domain, n=500, interpolation="lerp")
    z1, z2, _ = same_draws(model, digits, tmp_path, 500)
    exact = ((z2 - z1).double() @ a.t()).square().sum(1).numpy()
    lo, hi = np.percentile(exact, 1, method="lower"), np.percentile(exact, 99, method="higher")
    kept = exact[(exact >= lo) & (exact <= hi)]
    assert len(kept) == 492  # order statistics 5 to 496 of 500: 4 dropped at either end
    assert out["ppl"] == pytest.approx(kept.mean(), rel=2e-3)
    report = json.loads((tmp_path / "ppl.json").read_text())
    assert report["kept"] == 492 and report["thresholds"] == pytest.approx([lo, hi], rel=5e-3)
    values, low, high = trim(np.arange(100.0), 0, 100)
    assert len(values) == 100 and (low, high) == (0.0, 99.0)


def test_slerp_path_matches_the_derivative_of_the_arc(planted):
    m, domain, a = planted
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(200, D, generator=g), 2 * torch.randn(200, D, generator=g)
    t = torch.rand(200, generator=g, dtype=torch.float64)
    parts = [LatentPart("z", 0, D, "normal", "slerp")]
    got = path_lengths(Linear(m), domain.features, z1, z2, t, parts=parts, epsilon=1e-4)
    # d/dt [sin((1-t)Ω) a + sin(tΩ) b] / sin Ω = Ω (-cos((1-t)Ω) a + cos(tΩ) b) / sin Ω
    a64, b64, tt = z1.double(), z2.double(), t[:, None]
    omega = torch.nn.functional.cosine_similarity(a64, b64).clamp(-1, 1).acos()[:, None]
    velocity = omega * (-((1 - tt) * omega).cos() * a64 + (tt * omega).cos() * b64) / omega.sin()
    exact = (velocity @ a.t()).square().sum(1)
    torch.testing.assert_close(got, exact, rtol=1e-2, atol=0)
    # the arc joins the endpoints, and its norm runs between theirs (no unit projection)
    torch.testing.assert_close(slerp(a64, b64, torch.zeros(200, 1).double()), a64)
    torch.testing.assert_close(slerp(a64, b64, torch.ones(200, 1).double()), b64)
    mid = slerp(a64, b64, torch.full((200, 1), 0.5).double()).norm(dim=1)
    assert (mid >= a64.norm(dim=1).minimum(b64.norm(dim=1)) * (1 - 1e-9)).all()
    torch.testing.assert_close(slerp(a64, 3 * a64, tt), lerp(a64, 3 * a64, tt))  # parallel


def test_constant_generator_has_zero_and_scaling_by_c_multiplies_by_c_squared(
    planted, digits, tmp_path
):
    m, domain, _ = planted
    zero = run("ppl", Planted(Linear(torch.zeros_like(m))), digits, tmp_path, domain, n=64)
    assert zero["ppl"] == 0.0
    base = run("ppl", Planted(Linear(m)), digits, tmp_path, domain, n=300)
    scaled = run("ppl", Planted(Linear(m), scale=3.0), digits, tmp_path, domain, n=300)
    assert scaled["ppl"] == pytest.approx(9 * base["ppl"], rel=1e-3)
    report = json.loads((tmp_path / "ppl.json").read_text())
    assert report["interpolation"] == [
        {"name": "z", "start": 0, "stop": D, "prior": "normal", "method": "slerp"}
    ]


class Smooth(nn.Module):
    """A smooth non-linear generator: 0.9 tanh(M2 tanh(M1 z)), far from the clamp."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.m1 = torch.randn(32, D, generator=g) / math.sqrt(D)
        self.m2 = torch.randn(PIXELS, 32, generator=g) / math.sqrt(32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(z @ self.m1.t().to(z.dtype))
        return 0.9 * torch.tanh(h @ self.m2.t().to(z.dtype))


def test_float32_differences_are_not_dominated_by_rounding(planted):
    _, domain, _ = planted
    gen, feats = Smooth(), LinearFeatures(domain.w)
    g = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(400, D, generator=g), torch.randn(400, D, generator=g)
    t = torch.rand(400, generator=g, dtype=torch.float64)
    parts = [LatentPart("z", 0, D, "normal", "slerp")]
    at = {
        eps: path_lengths(gen, feats.features, z1, z2, t, epsilon=eps, parts=parts)
        for eps in (1e-3, 1e-4)
    }
    reference = path_lengths(  # the same in float64 throughout
        gen, feats.features, z1.double(), z2.double(), t, epsilon=1e-4, parts=parts
    )
    assert float(at[1e-4].mean()) == pytest.approx(float(reference.mean()), rel=2e-3)
    torch.testing.assert_close(at[1e-4], reference, rtol=3e-2, atol=1e-3 * reference.mean())
    assert float(at[1e-3].mean()) == pytest.approx(float(at[1e-4].mean()), rel=1e-2)


# --- torch-fidelity's PPL ------------------------------------------------------------------------
SIMILARITY = "ganbench-test-squared-features"


def register_similarity() -> str:
    """A torch-fidelity sample similarity computing the same squared feature distance."""
    from torch_fidelity.registry import SAMPLE_SIMILARITY_REGISTRY, register_sample_similarity
    from torch_fidelity.sample_similarity_base import SampleSimilarityBase

    class SquaredFeatures(SampleSimilarityBase):
        def __init__(self, name, ganbench_test_features=None, **kwargs):
            super().__init__(name)
            self.features = ganbench_test_features

        def forward(self, x0, x1):
            f = self.features(torch.cat([x0, x1])).flatten(1).double()
            f0, f1 = f.chunk(2)
            return (f1 - f0).square().sum(1)

    if SIMILARITY not in SAMPLE_SIMILARITY_REGISTRY:
        register_sample_similarity(SIMILARITY, SquaredFeatures)
    return SIMILARITY


class Images(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, z):
        return self.module(z).reshape(len(z), 1, 32, 32)


def fidelity_ppl(module: nn.Module, features, n: int, interp: str, seed: int) -> np.ndarray:
    """torch-fidelity's per-pair values (untrimmed: its percentile trimming calls
    ``np.percentile(..., interpolation=...)``, which numpy 2.4 no longer accepts)."""
    import torch_fidelity
    from torch_fidelity.generative_model_modulewrapper import GenerativeModelModuleWrapper

    out = torch_fidelity.calculate_metrics(
        input1=GenerativeModelModuleWrapper(Images(module), D, "normal", 0),
        input1_model_num_samples=n,
        ppl=True,
        ppl_epsilon=1e-4,
        ppl_z_interp_mode=interp,
        ppl_sample_similarity=register_similarity(),
        ppl_sample_similarity_resize=None,
        ppl_sample_similarity_dtype=None,
        ppl_discard_percentile_lower=None,
        ppl_discard_percentile_higher=None,
        ppl_reduction="none",
        ganbench_test_features=features,
        batch_size=500,
        rng_seed=seed,
        cuda=False,
        cache=False,
        verbose=False,
    )
    return np.asarray(out["perceptual_path_length_raw"], dtype=np.float64)


@pytest.mark.parametrize(("interp", "method"), [("lerp", "lerp"), ("slerp_any", "slerp")])
def test_same_latents_give_torch_fidelitys_values(planted, interp, method):
    """torch-fidelity measures at t = 0 (our sampling "end"); replicating its draws (numpy
    RandomState(seed): all start latents, then all end latents) gives its per-pair values."""
    _, domain, _ = planted
    gen, n, seed = Smooth(), 300, 11
    theirs = fidelity_ppl(gen, domain.features, n, interp, seed)
    rng = np.random.RandomState(seed)
    z1 = torch.from_numpy(rng.randn(n, D)).float()
    z2 = torch.from_numpy(rng.randn(n, D)).float()
    parts = [LatentPart("z", 0, D, "normal", method)]
    ours = path_lengths(
        Images(gen), domain.features, z1, z2, torch.zeros(n), epsilon=1e-4, parts=parts
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=2e-2)
    assert trim(ours, 1, 99)[0].mean() == pytest.approx(trim(theirs, 1, 99)[0].mean(), rel=2e-3)


@pytest.mark.parametrize(("interp", "interpolation"), [("lerp", "lerp"), ("slerp_any", "auto")])
def test_evaluator_agrees_with_torch_fidelity_statistically(
    planted, digits, tmp_path, interp, interpolation
):
    """Independent draws on both sides (ours from the trial seed, torch-fidelity's from its
    numpy seed), the same definition (t = 0, the same interpolation and distance, 1%/99%
    trimming): the two means agree within 4 standard errors of their difference."""
    _, domain, _ = planted
    gen, n = Smooth(), 2000
    theirs = trim(fidelity_ppl(gen, domain.features, n, interp, 2020), 1, 99)[0]
    out = run(
        "ppl",
        Planted(gen),
        digits,
        tmp_path,
        domain,
        n=n,
        sampling="end",
        interpolation=interpolation,
        batch_size=500,
    )
    report = json.loads((tmp_path / "ppl.json").read_text())
    se = math.hypot(report["stderr"], theirs.std(ddof=1) / math.sqrt(len(theirs)))
    assert abs(out["ppl"] - theirs.mean()) < 4 * se, (out["ppl"], theirs.mean(), se)
    assert report["t"] == "0" and report["interpolation"][0]["method"] == interp[:5]


# --- every architecture ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_architectures())
def test_runs_on_every_registered_architecture(name, digits, tmp_path):
    params = {"width": 8} if "width" in get_architecture(name).defaults else {}
    torch.manual_seed(0)
    arch = create_architecture(name, digits.spec, **params).eval()
    domain = Projection(PIXELS, 16)
    for metric in ("ppl", "ppl_w"):
        cls = get_metric(metric)
        reason = cls.not_applicable_reason(arch.capabilities, digits.spec.features, name)
        if metric == "ppl_w" and "styles" not in arch.capabilities:
            assert reason is not None and "styles" in reason
            continue
        assert reason is None
        out = run(metric, arch, digits, tmp_path, domain, n=6, batch_size=3)
        assert set(out) == {s.name for s in cls.scores}
        assert out[f"{metric}_n"] == 6
        assert math.isfinite(out[metric]) and out[metric] >= 0, out
        report = json.loads((tmp_path / f"{metric}.json").read_text())
        assert sum(p["stop"] - p["start"] for p in report["interpolation"]) > 0
        if name == "infogan" and metric == "ppl":
            assert [(p["name"], p["method"]) for p in report["interpolation"]] == [
                ("noise", "slerp"),
                ("categorical", "lerp"),
                ("continuous", "lerp"),
            ]
        if name == "cocogan":
            assert report["interpolation"][0]["method"] == "lerp"  # U(-1, 1): not Gaussian


def test_ppl_w_follows_the_generator_that_generate_samples(digits, tmp_path):
    """With truncation_psi = 0 every w truncates to w_avg: the W path has length 0."""
    arch = create_architecture("stylegan", digits.spec, width=8, truncation_psi=0.0).eval()
    out = run("ppl_w", arch, digits, tmp_path, Projection(PIXELS, 16), n=4, batch_size=4)
    assert out["ppl_w"] == 0.0


def test_real_data_reference_is_not_applicable(digits, tmp_path):
    for metric in ("ppl", "ppl_w"):
        reason = get_metric(metric).not_applicable_reason(
            frozenset(), digits.spec.features, "the real-data reference"
        )
        assert reason and "the real-data reference" in reason
        with pytest.raises(NotApplicable, match="latent space"):
            run(metric, None, digits, tmp_path, Projection(PIXELS, 16), n=4)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epsilon": 0.0}, r"epsilon must be in \(0, inf\), got 0.0"),
        ({"epsilon": math.inf}, r"epsilon must be in \(0, inf\), got inf"),
        ({"n": 0}, "n must be >= 1, got 0"),
        ({"discard_upper": 101.0}, r"discard_upper must be in \[0, 100\], got 101.0"),
        ({"discard_lower": 50.0, "discard_upper": 40.0}, "needs discard_lower < discard_upper"),
        ({"sampling": "middle"}, "sampling must be one of 'full', 'end', got 'middle'"),
        ({"interpolation": "cubic"}, "interpolation must be one of 'auto', 'lerp'"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=f"evaluator 'ppl': {message}"):
        create_metric("ppl", **params)


# --- issue 31: a collapsed generator must not win ----------------------------------------------
def better(direction: str, a: float, b: float) -> bool:
    """Whether ``a`` ranks above ``b`` on a column of this direction."""
    return (direction == "lower" and a < b) or (direction == "higher" and a > b)


@pytest.mark.parametrize("metric", ["ppl", "ppl_w"])
def test_a_collapsed_generator_wins_no_ranked_column(metric, planted, digits, tmp_path):
    """A generator that draws one image has PPL 0, the least there is: an untrained DCGAN (one
    flat grey image) scored 0.003 against 107-203 for trained ones. Dividing by the samples'
    spread does not fix it (a near-linear untrained net has the straightest paths: measured
    2.5 against 5.2 for the trained DCGAN), so no PPL column is ranked; the spread beside it
    shows why the number is small."""
    m, domain, a = planted
    cls = get_metric(metric)
    if metric == "ppl":
        collapsed, diverse = Planted(Linear(torch.zeros_like(m))), Planted(Linear(m))
    else:
        collapsed, diverse = (
            create_architecture("stylegan", digits.spec, width=8, truncation_psi=psi).eval()
            for psi in (0.0, 1.0)
        )
    low = run(metric, collapsed, digits, tmp_path, domain, n=64, batch_size=32)
    high = run(metric, diverse, digits, tmp_path, domain, n=64, batch_size=32)
    assert low[metric] == 0.0 < high[metric]
    for score in cls.scores:
        assert not better(score.direction, low[score.name], high[score.name]), score.name
    assert low[f"{metric}_spread"] == 0.0 < high[f"{metric}_spread"]


def test_spread_of_a_linear_generator_is_its_share_of_the_data_spread(planted, digits, tmp_path):
    """G(z) = M z through φ = Wᵀx: E||φ(G(z1)) - φ(G(z2))||² = 2 ||A||_F² exactly; the data's is
    2 Σ var φ(x) over the held-out images."""
    m, domain, a = planted
    n = 2000
    out = run("ppl", Planted(Linear(m)), digits, tmp_path, domain, n=n, batch_size=500)
    lam = torch.linalg.eigvalsh(a.t() @ a)
    expected = 2 * float(lam.sum())
    se = math.sqrt(8 * float(lam.square().sum()) / n)
    real = domain.features(digits.split("test").images).double()
    data = 2 * float(real.var(0).sum())
    assert abs(out["ppl_spread"] * data - expected) < 4 * se
