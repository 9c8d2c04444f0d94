"""Inception FID from a local weights file only: n/a without one, one-line errors for a bad
one, and torch-fidelity's numbers from a randomly initialised Inception-v3 saved the way
torch-fidelity's own weights file is (its ``state_dict()``, ``torch.save``d)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from ganbench.core.errors import ConfigError, NotApplicable
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_dataset, create_metric
from ganbench.metrics.inception import InceptionFID
from ganbench.run.fingerprint_inputs import random_inception_file
from tests.conftest import eval_context


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits")


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Every test here fails if torch-fidelity tries to fetch its weights."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    def refuse(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download the Inception weights")

    monkeypatch.setattr(inception, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("inception")
    return [random_inception_file(root / f"inception-{s}.pth", s) for s in (0, 1)]


class Samples:
    """A context whose real and generated images are given (the same tensor: FID ~ 0)."""

    device = torch.device("cpu")
    seed = 0
    model = None  # images given, no model to sample

    def __init__(self, real, fake, artifact_dir):
        self.real, self.fake, self.artifact_dir = real, fake, artifact_dir

    def reals(self, n=None, split="test"):
        return self.real[:n]

    def fakes(self, n):
        return self.fake[:n]


# --- no weights, bad weights ---------------------------------------------------------------------
def test_without_weights_the_metric_is_not_applicable_and_says_what_to_set(digits, tmp_path):
    with pytest.raises(NotApplicable) as info:
        evaluate_and_write(create_metric("fid_inception"), eval_context(None, digits, tmp_path))
    reason = str(info.value)
    assert "\n" not in reason
    assert "[metric.fid_inception] weights" in reason
    assert "nothing is downloaded" in reason


def test_a_missing_file_is_a_one_line_error_naming_it(digits, tmp_path):
    missing = tmp_path / "nowhere" / "inception.pth"
    ctx = eval_context(None, digits, tmp_path)
    with pytest.raises(ConfigError) as info:
        evaluate_and_write(create_metric("fid_inception", weights=str(missing)), ctx)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def _touch(path: str) -> None:
    Path(path).touch()


class Payload:
    """Unpickled by a plain ``torch.load(weights_only=False)``, it would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


@pytest.mark.parametrize("content", ["random bytes", "truncated", "code", "not tensors", "keys"])
def test_a_corrupt_file_is_a_one_line_error_naming_it(digits, tmp_path, weights, content):
    bad, marker = tmp_path / "inception.pth", tmp_path / "code-ran"
    if content == "random bytes":
        bad.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif content == "truncated":
        bad.write_bytes(weights[0].read_bytes()[:100_000])
    elif content == "code":
        torch.save({"fc.weight": Payload(marker)}, bad)
    elif content == "not tensors":
        torch.save({"fc.weight": [1, 2, 3]}, bad)
    else:  # tensors, but not the Inception network's
        torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    metric = create_metric("fid_inception", weights=str(bad), n=4, batch_size=4)
    with pytest.raises(ConfigError) as info:
        evaluate_and_write(metric, eval_context(None, digits, tmp_path))
    message = str(info.value)
    assert str(bad) in message and "\n" not in message, message
    assert not marker.exists()  # the file is read with weights_only=True first


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"feature_layer": "1000"}, "feature_layer must be one of '64', '192', '768', '2048'"),
        ({"n": 1}, "n must be >= 2, got 1"),
        ({"kid_subset_size": 1}, "kid_subset_size must be >= 2, got 1"),
        ({"kid_subsets": 0}, "kid_subsets must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=f"evaluator 'fid_inception': {message}"):
        create_metric("fid_inception", **params)


# --- numbers from a weights file -----------------------------------------------------------------
def scores(weights_file, ctx, **params):
    params = {"weights": str(weights_file), "batch_size": 16, "kid_subsets": 10, **params}
    out = evaluate_and_write(InceptionFID(**params), ctx)
    assert set(out) == {s.name for s in InceptionFID.scores}
    assert all(math.isfinite(v) for v in out.values()), out
    return out


def test_fid_from_a_weights_file(weights, digits, tmp_path):
    """An early Inception layer (64 features: the FID's 64x64 eigenproblem is instant) keeps
    this fast; the 2048-d pool features are in the slow test below."""
    test = digits.split("test").images
    same = Samples(test[:8], test[:8], tmp_path)
    itself = scores(weights[0], same, n=8, feature_layer="64")
    real_reference = eval_context(None, digits, tmp_path)  # 8 training vs 8 test images
    other = scores(weights[0], real_reference, n=8, feature_layer="64")
    second_file = scores(weights[1], real_reference, n=8, feature_layer="64")
    assert other["fid_inception_n"] == 8
    assert abs(itself["fid_inception"]) < 1e-6 * other["fid_inception"]
    assert other["fid_inception"] > 0
    # the features come from the file: another random network, other distances
    assert second_file["fid_inception"] != pytest.approx(other["fid_inception"], rel=1e-3)
    report = json.loads((tmp_path / "fid_inception.json").read_text())
    assert report["weights_sha256"] == hashlib.sha256(weights[1].read_bytes()).hexdigest()
    assert report["weights"] == str(weights[1]) and report["feature_layer"] == "64"


def test_a_model_is_sampled_through_torch_fidelitys_generator_wrapper(weights, digits):
    """torch-fidelity draws N(0, 1) latents from its seed and generates; by hand, the same."""
    import numpy as np

    from ganbench.metrics.inception import inception_metrics
    from ganbench.run.conformance_checks import small

    model = small("cocogan").eval()  # a U(-1, 1) prior, reached through latent_from_normal
    real = digits.split("test").images[:8]
    kw = dict(kid_subset_size=4, kid_subsets=5, feature_layer="64", batch_size=4, seed=3)
    sampled = inception_metrics(model, real, weights[0], **kw)
    noise = torch.from_numpy(np.random.RandomState(3).randn(8, model.latent_dim)).float()
    with torch.no_grad():
        by_hand = model.generate(model.latent_from_normal(noise))
    assert sampled == pytest.approx(inception_metrics(by_hand, real, weights[0], **kw), rel=1e-4)


@pytest.mark.slow
def test_fid_in_the_2048_pool_features(weights, digits, tmp_path):
    test = digits.split("test").images
    itself = scores(weights[0], Samples(test[:12], test[:12], tmp_path), n=12)
    other = scores(weights[0], Samples(test[:12], test[12:24], tmp_path), n=12)
    assert abs(itself["fid_inception"]) < 1e-3 * other["fid_inception"]
    assert other["fid_inception"] > 0 and other["fid_inception_n"] == 12


# --- keys name the weights, not their path ------------------------------------------------------
def _keys(tiny_config, weights_path: str, name: str) -> tuple[str, dict]:
    from ganbench.run.config_load import load_config
    from ganbench.run.trials import expand

    extra = f'\n[metric.fid_inception]\nweights = "{weights_path}"\nn = 8\nbatch_size = 8\n'
    path = tiny_config(
        {'metrics = ["c2st", "mmd"]': 'metrics = ["c2st", "mmd", "fid_inception"]'}, extra, name
    )
    trial = next(
        t
        for t in expand(load_config(str(path)), "cpu")
        if t.labels.get("evaluator") == "fid_inception"
    )
    return trial.key, trial


def test_an_evaluation_key_names_the_inception_weights_by_sha256(tiny_config, weights, tmp_path):
    copy = tmp_path / "elsewhere" / "inception.pth"
    copy.parent.mkdir()
    copy.write_bytes(weights[0].read_bytes())
    key_a, trial = _keys(tiny_config, str(weights[0]), "a.toml")
    key_b, _ = _keys(tiny_config, str(copy), "b.toml")
    key_c, _ = _keys(tiny_config, str(weights[1]), "c.toml")
    assert key_a == key_b != key_c  # the same file anywhere: one key; another file: another
    params = trial.config["evaluator"]["params"]
    assert "weights" not in params
    assert params["weights_sha256"] == hashlib.sha256(weights[0].read_bytes()).hexdigest()
    assert trial.extra["evaluator_params"]["weights"] == str(weights[0])  # what it runs with


def test_a_matrix_runs_fid_inception_from_the_path_its_key_does_not_hold(
    tiny_config, weights, tmp_path
):
    from ganbench.run.config_load import load_config
    from ganbench.run.runner import run_matrix
    from ganbench.run.store import Store

    _, trial = _keys(tiny_config, str(weights[0]), "run.toml")
    cfg = load_config(str(tmp_path / "run.toml"))
    store = Store(tmp_path / "s.sqlite")
    summary = run_matrix(cfg, store, device="cpu", quiet=True, log=lambda s: None)
    assert not summary.failed, summary.failed
    rec = store.get(trial.key)
    assert rec.status == "finished" and math.isfinite(rec.scores["fid_inception"])
