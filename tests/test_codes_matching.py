"""InfoGAN's categorical code scored against the right head, on planted truth.

A planted "generator" writes, for each image, the class of every categorical head of the
domain network into a pixel, and a stand-in network reads them back: whatever rule ties the
code to a head is then known exactly. The heads are those of the real networks (digits: the
10-class label; shapes: shape 3, colour 6, background 4, and the continuous factors), and a
last test runs the real shapes network on real shapes images picked by the code.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganbench.architectures.infogan import CodeSpec
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_dataset, get_architecture, get_explainer
from ganbench.datasets.domain import heads_for
from ganbench.explainers.codes import CodeExplainer
from ganbench.explainers.codes_matching import code_information, counts_matrix, matched_accuracy
from tests.conftest import eval_context

K = 10  # categorical code values, as in the paper and the harness


def _spec(name: str):
    if name == "digits":
        return create_dataset("digits").spec
    return create_dataset("shapes", train_size=16, test_size=16).spec


class Readout:
    """Stand-in domain network with the real network's heads: head i's class is 10 x pixel i."""

    def __init__(self, dataset: str) -> None:
        self.heads_spec = heads_for(_spec(dataset))
        categorical = [h.name for h in self.heads_spec if h.levels > 0]
        self.class_head = categorical[0]

    def predict(self, x):
        flat = x.flatten(1)
        return {
            h.name: (flat[:, i] * 10).round().long() if h.levels else flat[:, i].float()
            for i, h in enumerate(self.heads_spec)
        }


class Planted:
    """Code value v gives head h the class ``rules[h](v, noise)``; heads without a rule get a
    class drawn from the noise (independent of the code); ``collapse``: class 0 everywhere."""

    capabilities = frozenset({"layers", "codes"})

    def __init__(self, dataset: str, rules: dict, collapse: bool = False) -> None:
        self.heads = heads_for(_spec(dataset))
        self.rules = rules
        self.collapse = collapse
        self.spec = CodeSpec(noise_dim=len(self.heads), categories=K, continuous=2)
        self.latent_dim = self.spec.latent_dim
        self.device = torch.device("cpu")

    def code_spec(self):
        return self.spec

    def sample_latent(self, n, generator=None, category=None, continuous=None):
        noise = torch.rand(n, self.spec.noise_dim, generator=generator)
        cat = torch.randint(0, K, (n,), generator=generator)
        cont = torch.rand(n, 2, generator=generator) * 2 - 1
        if category is not None:
            cat = torch.as_tensor(category).expand(n).clone()
        if continuous is not None:
            cont = torch.as_tensor(continuous, dtype=torch.float32).expand(n, 2).clone()
        one_hot = torch.nn.functional.one_hot(cat, K).float()
        return torch.cat([noise, one_hot, cont], 1)

    def split_latent(self, z):
        d = self.spec.noise_dim
        return z[:, :d], z[:, d : d + K].argmax(1), z[:, d + K :]

    def generate(self, z):
        noise, cat, cont = self.split_latent(z)
        pixels = torch.zeros(len(z), 16)
        for i, h in enumerate(self.heads):
            if self.collapse:
                value = torch.zeros(len(z))
            elif h.name in self.rules:
                value = self.rules[h.name](cat, noise[:, i]).float()
            elif h.levels:
                value = (noise[:, i] * h.levels).floor().clamp(max=h.levels - 1)
            else:
                value = noise[:, i]
            pixels[:, i] = value / 10 if h.levels else value  # images live in [-1, 1]
        pixels[:, 14:16] = cont
        pixels[:, 13] = cat.float() / 10
        return pixels.view(len(z), 1, 4, 4)

    def predict_codes(self, x):
        flat = x.flatten(1)
        return torch.nn.functional.one_hot((flat[:, 13] * 10).round().long(), K).float(), flat[
            :, 14:16
        ]


def score(model, dataset: str, tmp_path, **params):
    ds = (
        create_dataset("digits")
        if dataset == "digits"
        else create_dataset("shapes", train_size=16, test_size=16)
    )
    ctx = eval_context(model, ds, tmp_path, domain=Readout(dataset))
    params = {"n_per_category": 100, "figure": False, "shuffles": 100, **params}
    scores = evaluate_and_write(CodeExplainer(**params), ctx)
    assert set(scores) == {s.name for s in CodeExplainer.scores}
    assert all(math.isfinite(v) for v in scores.values())
    return scores, json.loads((tmp_path / "codes.json").read_text())


# --- the matching rule on known tables --------------------------------------------------------
def test_matching_allows_each_class_its_share_of_code_values():
    codes = torch.arange(4).repeat_interleave(25)
    perm = torch.tensor([3, 0, 2, 1])
    accuracy, matching = matched_accuracy(counts_matrix(codes, perm[codes], 4, 4))
    assert accuracy == 1.0 and matching == {0: 3, 1: 0, 2: 2, 3: 1}  # k = m: Hungarian
    # k = m, two code values on one class: one-to-one, so one of them is an error
    labels = torch.tensor([0, 0, 1, 2]).repeat_interleave(25)
    assert matched_accuracy(counts_matrix(codes, labels, 4, 4))[0] == 0.75
    # 4 code values, 2 classes, each class drawn by two values: the code determines the class
    labels = torch.tensor([0, 1, 0, 1]).repeat_interleave(25)
    accuracy, matching = matched_accuracy(counts_matrix(codes, labels, 4, 2))
    assert accuracy == 1.0 and matching == {0: 0, 1: 1, 2: 0, 3: 1}
    # 10 code values on 3 classes, all of one class (collapse): a class takes at most
    # ceil(10 / 3) = 4 code values, so collapse scores 4/10, not 1
    codes = torch.arange(10).repeat_interleave(10)
    assert matched_accuracy(counts_matrix(codes, torch.zeros(100), 10, 3))[0] == 0.4
    # ... while 10 values spread 4/3/3 over the 3 classes are matched exactly
    assert matched_accuracy(counts_matrix(codes, codes % 3, 10, 3))[0] == 1.0


def test_code_information_is_one_when_the_code_determines_the_class_and_zero_on_collapse():
    codes = torch.arange(10).repeat_interleave(30)
    assert code_information(counts_matrix(codes, codes % 4, 10, 4)) == pytest.approx(1.0)
    assert code_information(counts_matrix(codes, codes, 10, 10)) == pytest.approx(1.0)
    assert code_information(counts_matrix(codes, torch.zeros(300), 10, 4)) == 0.0  # collapse
    independent = torch.arange(300) % 3  # every code value draws each class 10 times
    assert code_information(counts_matrix(codes, independent, 10, 3)) == pytest.approx(0, abs=1e-12)


# --- the evaluator, on each dataset's heads ---------------------------------------------------
def test_digits_code_that_determines_the_digit_scores_one(tmp_path):
    perm = torch.tensor([4, 9, 0, 7, 1, 3, 8, 2, 6, 5])
    scores, report = score(Planted("digits", {"label": lambda c, _: perm[c]}), "digits", tmp_path)
    assert scores["code_accuracy"] == 1.0 and scores["code_information"] == pytest.approx(1.0)
    assert 0.1 <= scores["code_chance"] < 0.16  # ~1/10 plus the matching's bias
    assert scores["code_information_chance"] < 0.05
    assert scores["code_classes"] == 10 and report["head"] == "label"
    assert scores["code_p_value"] == pytest.approx(1 / 101)


@pytest.mark.parametrize("head, levels", [("shape", 3), ("colour", 6), ("background", 4)])
def test_shapes_code_is_matched_to_the_factor_it_determines(tmp_path, head, levels):
    """10 code values on a factor with fewer levels (value v -> level v mod levels): the
    code determines the factor exactly, so its accuracy is 1 against that head."""
    model = Planted("shapes", {head: lambda c, _: c % levels})
    scores, report = score(model, "shapes", tmp_path)
    assert scores["code_accuracy"] == 1.0
    assert report["head"] == head and scores["code_classes"] == levels
    assert scores["code_information"] == pytest.approx(1.0)
    # chance for 10 values on `levels` classes: about 1/levels, plus the matching's bias
    assert 1 / levels <= scores["code_chance"] < 1 / levels + 0.08
    assert scores["code_p_value"] == pytest.approx(1 / 101)
    assert [r["matched_class"] for r in report["codes"]] == [v % levels for v in range(K)]


@pytest.mark.parametrize("dataset", ["digits", "shapes"])
def test_a_code_independent_of_every_head_scores_its_chance(tmp_path, dataset):
    scores, report = score(Planted(dataset, {}), dataset, tmp_path)
    assert abs(scores["code_accuracy"] - scores["code_chance"]) < 0.03
    assert scores["code_p_value"] > 0.05
    assert scores["code_information"] < 0.03
    assert abs(scores["code_information"] - scores["code_information_chance"]) < 0.02


@pytest.mark.parametrize("dataset", ["digits", "shapes"])
def test_collapse_wins_nothing(tmp_path, dataset):
    """An untrained-like net: every image one class on every head, whatever the code. The
    old purity (each code value's images all share a class) was 1.0 here."""
    scores, report = score(Planted(dataset, {}, collapse=True), dataset, tmp_path)
    assert scores["code_information"] == 0.0
    assert scores["code_accuracy"] == pytest.approx(scores["code_chance"])
    assert scores["code_accuracy"] <= 0.4  # digits: 1/10; shapes: 4 of 10 values on shape
    assert scores["code_p_value"] == 1.0


def test_per_class_table(tmp_path):
    """codes_per_class.json: per code value its matched class, accuracy and image count, and
    per class the code values matched to it."""
    # background = v mod 4, except that code value 9 draws black only half the time
    rule = {"background": lambda c, u: torch.where((c == 9) & (u < 0.5), 0, c % 4)}
    scores, _ = score(Planted("shapes", rule), "shapes", tmp_path)
    table = json.loads((tmp_path / "codes_per_class.json").read_text())
    assert table["head"] == "background" and table["n_per_code"] == 100
    assert table["class_names"] == ["black", "grey", "white", "brown"]
    rows = table["codes"]
    assert [r["code"] for r in rows] == list(range(K))
    assert [r["matched_class"] for r in rows] == [v % 4 for v in range(K)]
    assert [r["matched_name"] for r in rows][:4] == ["black", "grey", "white", "brown"]
    assert all(r["n"] == 100 for r in rows)
    assert all(r["accuracy"] == 1.0 for r in rows[:9]) and 0.3 < rows[9]["accuracy"] < 0.7
    assert sum(r["correct"] for r in rows) / 1000 == pytest.approx(scores["code_accuracy"])
    classes = table["classes"]
    assert [c["codes"] for c in classes] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert classes[2]["accuracy"] == 1.0 and classes[1]["accuracy"] < 1.0
    assert classes[0]["recall"] < 1.0  # some of black's images came from value 9


def test_the_explainers_apply_to_infogan_iic():
    arch = get_architecture("infogan-iic")
    digits, shapes = _spec("digits"), _spec("shapes")
    for name, spec in [("codes", digits), ("codes", shapes), ("code_factors", shapes)]:
        assert (
            get_explainer(name).not_applicable_reason(
                arch.capabilities, spec.features, "infogan-iic"
            )
            is None
        )


def test_real_shapes_network_reads_a_planted_background_code(tmp_path, domain_cache):
    """End to end on the pinned shapes network: code value v draws real test images whose
    background is v mod 4 (anything else at random): matched to the background head at
    ~the network's background accuracy; the same images drawn regardless of code: chance."""
    from ganbench.run.domain import domain_network

    shapes = create_dataset("shapes")
    test = shapes.split("test")
    background = test.extras["factors"][:, -1].long()
    net = domain_network("shapes", {}, domain_cache).eval()

    class Pool(Planted):
        def __init__(self, by_code: bool):
            super().__init__("shapes", {})
            self.by_code = by_code

        def generate(self, z):
            noise, cat, _ = self.split_latent(z)
            out = []
            for i, v in enumerate(cat.tolist()):
                want = v % 4 if self.by_code else int(noise[i, 0] * 4)
                pool = test.images[background == want]
                out.append(pool[int(noise[i, 1] * len(pool))])
            return torch.stack(out)

        def predict_codes(self, x):
            return torch.zeros(len(x), K), torch.zeros(len(x), 2)

    for by_code in (True, False):
        ctx = eval_context(Pool(by_code), shapes, tmp_path, domain=net)
        scores = evaluate_and_write(
            CodeExplainer(n_per_category=60, figure=False, shuffles=50), ctx
        )
        report = json.loads((tmp_path / "codes.json").read_text())
        if by_code:
            assert scores["code_accuracy"] >= 0.97 and report["head"] == "background"
            assert scores["code_information"] >= 0.9
        else:
            assert abs(scores["code_accuracy"] - scores["code_chance"]) < 0.05
            assert scores["code_information"] < 0.05
