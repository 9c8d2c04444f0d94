"""Direction recovery against planted truth (issue 31): a generator whose images depend on its
16-d latent only through 3 planted directions (a random rotation, not coordinate axes), each
driving one known factor of a blob (x, y and size), the other 13 dimensions inert. SeFa and
GANSpace recover the planted directions exactly here; random directions do not. RCA, the
paper's score, ranks them the other way round; ``recovery`` ranks them by what they recover."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganbench.core.evaluation import evaluate_and_write
from ganbench.datasets.domain import Head
from ganbench.explainers.directions import DirectionsExplainer, DirectionsWExplainer
from ganbench.explainers.directions_factors import DirectionFactorsExplainer
from ganbench.explainers.directions_latent import random_orthonormal, sefa_directions
from ganbench.explainers.directions_rca import train_reconstructor
from ganbench.explainers.directions_recovery import (
    dci,
    explained_shares,
    factor_targets,
    mutual_information_gap,
    recovery_summary,
)
from tests.conftest import eval_context
from tests.test_directions import BlobData, BlobReadout, PlantedBlob


class RotatedBlob(PlantedBlob):
    """The blob of ``PlantedBlob`` (x, y, size, quantised to 4 grey levels), its properties
    read from h = W z, W = diag(gains) U^T (3 x 16), U = 3 random orthonormal directions:
    the planted directions. Distinct gains make them the right singular vectors of W (so
    SeFa can find each one, not only their span); the 13 directions orthogonal to U are
    inert: the images do not depend on them at all."""

    def __init__(self, gains: tuple[float, ...] = (1.0, 0.8, 0.6), seed: int = 0) -> None:
        super().__init__()
        self.planted = random_orthonormal(16, 3, torch.Generator().manual_seed(seed))
        self.linear = nn.Linear(16, 3, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.diag(torch.tensor(gains)) @ self.planted.t())
        self.generator = nn.Sequential(self.linear).eval()

    def properties(self, z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.linear(z))
        return torch.stack([0.2 + 0.6 * s[:, 0], 0.2 + 0.6 * s[:, 1], 0.05 + 0.12 * s[:, 2]], 1)

    def generator_layers(self) -> dict[str, nn.Module]:
        return {"linear": self.linear}

    def inert(self, k: int, seed: int = 3) -> torch.Tensor:
        """k unit directions (16, k) orthogonal to the planted ones."""
        extra = torch.randn(16, k, generator=torch.Generator().manual_seed(seed))
        q, _ = torch.linalg.qr(torch.cat([self.planted, extra], 1))
        return q[:, 3:]


def test_the_planted_generator_is_what_it_claims():
    model = RotatedBlob()
    z = model.sample_latent(64, torch.Generator().manual_seed(0))
    assert not torch.allclose(model.planted.abs().max(0).values, torch.ones(3), atol=0.3)
    images = model.generate(z)
    moved = model.generate(z + 5 * model.inert(13).sum(1))
    assert torch.equal(images, moved)  # inert directions change nothing
    assert not torch.equal(images, model.generate(z + 2 * model.planted[:, 0]))
    sefa, _ = sefa_directions(model.linear.weight, 3)
    assert (sefa.t() @ model.planted).abs().diagonal().min() > 0.999


def test_recovery_ranks_exact_recovery_first_and_gives_ignored_directions_nothing(tmp_path):
    """K = 6 of a latent with 3 planted directions: SeFa's top three are the planted ones and
    its other three are inert; random and coordinate directions are mixtures."""
    model = RotatedBlob()
    readout = BlobReadout(model)
    ctx = eval_context(model, BlobData(model, readout), tmp_path, domain=readout)
    params = {"directions": 6, "steps": 20, "lr": 1e-3, "eval_samples": 64, "figure": False}
    scores = evaluate_and_write(DirectionFactorsExplainer(**params, n_align=2048), ctx)
    assert set(scores) == {s.name for s in DirectionFactorsExplainer.scores}
    report = json.loads((tmp_path / "directions-factors.json").read_text())
    assert report["factors"] == ["x", "y", "size"]
    arms = report["arms"]
    sefa = torch.tensor(arms["sefa"]["shares"])
    # measured: sefa 0.95, ganspace 0.91, random 0.16, coordinate 0.17
    assert scores["recovery_sefa"] > 0.85
    assert scores["recovery_ganspace"] > 0.8
    for baseline in ("random", "coordinate"):
        assert scores[f"recovery_{baseline}"] < 0.35
        assert scores["recovery_sefa"] > scores[f"recovery_{baseline}"] + 0.5
        assert scores["sap_sefa"] > scores[f"sap_{baseline}"] + 0.5
    # each planted direction carries its own factor, and nothing of the others
    assert arms["sefa"]["best_direction"] == {"x": 0, "y": 1, "size": 2}
    assert float(sefa[:3].diagonal().min()) > 0.8
    assert float((sefa[:3] - torch.diag(sefa[:3].diagonal())).max()) < 0.02
    # the three inert directions recover nothing (0 within the estimate's noise; measured 0)
    assert float(sefa[3:].max()) < 0.02
    # a mixed direction's share of a factor is about its squared cosine with the planted
    # direction times what the planted direction itself explains (x and y: near-linear)
    for arm in ("random", "coordinate", "learned"):
        directions = torch.tensor(arms[arm]["directions"])
        cos2 = (directions.t() @ model.planted) ** 2  # (6, 3)
        shares = torch.tensor(arms[arm]["shares"])
        for f in (0, 1):
            expected = cos2[:, f] * sefa[f, f]
            assert (shares[:, f] - expected).abs().max() < 0.08, (shares[:, f], expected)


def test_rca_prefers_random_mixtures_to_exact_recovery_so_it_is_not_ranked():
    """The reviewer's case: K = 6, SeFa exact on the three planted directions. RCA (gated:
    inert shifts are misses) still scores the random mixtures higher, so RCA is descriptive
    and the ranked score of the factors evaluator is recovery."""
    for cls, suffix in ((DirectionsExplainer, ""), (DirectionsWExplainer, "_w")):
        for score in cls.scores:
            if score.name.startswith(f"rca{suffix}"):
                assert score.direction == "none", score.name
    recovery = DirectionFactorsExplainer.score("recovery")
    assert recovery.direction == "higher" and recovery.control == "recovery_random"
    assert DirectionFactorsExplainer.score("sap").control == "sap_random"
    # why: the measured inversion
    model = RotatedBlob()
    sefa, _ = sefa_directions(model.linear.weight, 6)
    assert (sefa[:, :3].t() @ model.planted).abs().diagonal().min() > 0.999
    random_dirs = random_orthonormal(16, 6, torch.Generator().manual_seed(11))
    settings = {"steps": 200, "lr": 1e-3, "eval_samples": 384}
    rca_sefa = train_reconstructor(model, sefa, **settings)
    rca_random = train_reconstructor(model, random_dirs, **settings)
    # measured: sefa 0.50 (its 3 inert directions are misses), random 0.64
    assert rca_sefa < rca_random


def test_a_direction_the_decoder_ignores_earns_no_rca():
    """Directions: one planted (x) and one inert. Before, the reconstructor named the inert
    direction by its null effect and RCA was 0.98; an invisible shift is now a miss."""
    model = RotatedBlob()
    dirs = torch.cat([model.planted[:, :1], model.inert(1)], 1)
    settings = {"steps": 100, "lr": 1e-3, "eval_samples": 256}
    assert train_reconstructor(model, dirs, **settings) < 0.52  # before: 0.98
    out = train_reconstructor(model, dirs, **settings, details=True)
    assert out["per_direction"][1] == 0.0
    assert out["per_direction_invisible"][1] == 1.0
    assert out["per_direction"][0] > 0.9  # measured 0.96
    assert out["accuracy"] == pytest.approx(0.5 * sum(out["per_direction"]), abs=0.02)


# --- the estimators on data with known answers -------------------------------------------
def test_explained_shares_on_known_dependences():
    g = torch.Generator().manual_seed(0)
    n = 4000
    c = torch.randn(n, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    # factor 0 = c0 exactly; factor 1 = c1 + noise of equal variance (R^2 1/2);
    # factor 2: a class that is c2's sign (categorical, levels 2); column 3 unused
    pred = {"a": c[:, 0], "b": c[:, 1] + noise, "k": (c[:, 2] > 0).long()}
    heads = [Head("a", 0), Head("b", 0), Head("k", 2)]
    targets = factor_targets(pred, heads)
    coords = torch.cat([c, torch.randn(n, 1, generator=g, dtype=torch.float64)], 1)
    r = explained_shares(coords, targets, [0.0, 0.0, 0.0], bins=16)
    assert r.shape == (4, 3)
    assert float(r[0, 0]) > 0.97  # binned: a little less than 1
    assert float(r[1, 1]) == pytest.approx(0.5, abs=0.05)
    assert float(r[2, 2]) > 0.95  # one bin straddles the sign change
    off = r.clone()
    off[0, 0] = off[1, 1] = off[2, 2] = 0
    assert float(off.max()) < 0.01  # unrelated coordinates: 0 after the chance correction
    # a generator that varies factor a 4 times less than the real data (variance 1/16 of it)
    small = factor_targets({"a": c[:, 0] / 4}, [Head("a", 0)])
    r_small = explained_shares(coords, small, [1.0], bins=16)
    assert float(r_small[0, 0]) == pytest.approx(1 / 16, abs=0.01)

    summary = recovery_summary(r, ["a", "b", "k"])
    assert summary["best_direction"] == {"a": 0, "b": 1, "k": 2}
    assert summary["recovery"] == pytest.approx(float(r.diagonal().mean()))
    assert summary["sap"] == pytest.approx(summary["recovery"], abs=0.01)
    m = mutual_information_gap(coords, pred, heads, bins=16)
    assert m["mig_per_factor"]["k"] > 0.9  # sign of c2: one bit, all carried by c2
    # mixing the factors over the codes lowers SAP, MIG and DCI
    mixed = coords.clone()
    mixed[:, :3] = c @ random_orthonormal(3, 3, g).double()
    r_mixed = explained_shares(mixed, targets, [0.0, 0.0, 0.0], bins=16)
    s_mixed = recovery_summary(r_mixed, ["a", "b", "k"])
    assert s_mixed["sap"] < summary["sap"] - 0.2
    assert s_mixed["dci_disentanglement"] < summary["dci_disentanglement"] - 0.2
    assert mutual_information_gap(mixed, pred, heads, bins=16)["mig"] < m["mig"] - 0.2


def test_dci_and_sap_extremes():
    assert dci(torch.eye(3)) == {"dci_disentanglement": 1.0, "dci_completeness": 1.0}
    flat = dci(torch.ones(4, 3))
    assert flat["dci_disentanglement"] == pytest.approx(0.0, abs=1e-12)
    assert flat["dci_completeness"] == pytest.approx(0.0, abs=1e-12)
    assert dci(torch.zeros(2, 2)) == {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    assert recovery_summary(torch.eye(3), list("abc"))["sap"] == 1.0
    assert recovery_summary(torch.ones(4, 3), list("abc"))["sap"] == 0.0
