"""The training step's numerics switches: [train] precision (fp32, tf32, bf16) and compile.

They enter a train trial's key only when set (fp32 eager keeps the keys stored before the
switches existed), bf16 really runs the networks in bfloat16, tf32 is refused on a CPU
before the store is touched, and a compiled network's checkpoint loads into an eager one.
"""

from __future__ import annotations

import pytest
import torch

from ganbench.core.checkpoint import load_checkpoint
from ganbench.core.errors import ConfigError, GanbenchError
from ganbench.core.registry import create_architecture, create_dataset
from ganbench.run.config_load import load_config
from ganbench.run.layout import CHECKPOINT
from ganbench.run.numerics import numerics
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store
from ganbench.run.train_loop import train_model
from ganbench.run.trials import expand


def _train_trials(path) -> list:
    return [t for t in expand(load_config(str(path)), "cpu") if t.kind == "train"]


def test_defaults_leave_the_train_key_as_it_was(tiny_config):
    cfg = load_config(str(tiny_config()))
    assert (cfg.train["precision"], cfg.train["compile"]) == ("fp32", "none")
    for trial in _train_trials(tiny_config()):
        assert "precision" not in trial.config and "compile" not in trial.config


def test_precision_and_compile_change_the_key(tiny_config):
    base = {t.labels["reference"]: t for t in _train_trials(tiny_config())}
    for extra, field, value in (
        ("precision = 'bf16'\n", "precision", "bf16"),
        ("compile = 'reduce-overhead'\n", "compile", "reduce-overhead"),
    ):
        path = tiny_config({"grid_size = 16\n": "grid_size = 16\n" + extra}, name="x.toml")
        for t in _train_trials(path):
            assert t.config[field] == value
            assert t.key != base[t.labels["reference"]].key


@pytest.mark.parametrize(
    "line, words",
    [
        (
            "precision = 'fp16'",
            r"\[train\] key 'precision' must be one of fp32, tf32, bf16, got 'fp16'",
        ),
        ("compile = 'yes'", r"\[train\] key 'compile' must be one of none, default"),
    ],
)
def test_unknown_switch_values_are_named(tiny_config, line, words):
    path = tiny_config({"grid_size = 16\n": f"grid_size = 16\n{line}\n"})
    with pytest.raises(ConfigError, match=words):
        load_config(str(path))


def test_tf32_on_a_cpu_is_refused_before_the_store_is_touched(tiny_config, tmp_path):
    path = tiny_config({"grid_size = 16\n": "grid_size = 16\nprecision = 'tf32'\n"})
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(GanbenchError, match=r"precision 'tf32' needs a CUDA device, not cpu"):
        run_matrix(load_config(str(path)), store, device="cpu", quiet=True)
    assert list(store.records()) == []


def test_fp32_turns_tf32_off_and_restores_the_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True  # cuDNN's own default
    try:
        with numerics(torch.device("cpu"), "fp32"):
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.is_autocast_enabled("cpu")
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_bf16_runs_the_networks_in_bfloat16_and_trains():
    dataset = create_dataset("digits")
    torch.manual_seed(0)
    arch = create_architecture("dcgan", dataset.spec, width=8, latent_dim=16)
    seen: set[torch.dtype] = set()
    first_conv = next(m for m in arch.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    before = [p.detach().clone() for p in arch.generator.parameters()]
    timings = train_model(
        arch, dataset.split("train").images, 20, 32, 0, torch.device("cpu"), 10, precision="bf16"
    )
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in arch.generator.parameters())  # fp32 masters
    assert any(
        not torch.equal(a, b) for a, b in zip(before, arch.generator.parameters(), strict=True)
    )
    assert all(
        torch.isfinite(torch.tensor(v)) for k, v in timings.items() if k.startswith("final_")
    )
    # outside training, the networks are back to fp32
    seen.clear()
    arch.discriminator(dataset.split("train").images[:4])
    assert seen == {torch.float32}


def test_a_bf16_matrix_records_its_precision(tiny_config, tmp_path):
    path = tiny_config(
        {"grid_size = 16\n": "grid_size = 16\nprecision = 'bf16'\n", "steps = 40": "steps = 20"}
    )
    store = Store(tmp_path / "s.sqlite")
    summary = run_matrix(load_config(str(path)), store, device="cpu", quiet=True)
    assert not summary.failed and summary.finished == summary.total
    train = [r for r in store.records() if r.kind == "train"]
    assert train and all(r.config["precision"] == "bf16" for r in train)
    assert all(r.status == "finished" for r in store.records())


@pytest.mark.slow
def test_compiled_networks_train_and_their_checkpoint_loads_eager(tmp_path):
    """torch.compile on the CPU (inductor, C++): a minute of compilation on 2 cores."""
    from ganbench.core.checkpoint import save_checkpoint

    dataset = create_dataset("digits")
    torch.manual_seed(0)
    arch = create_architecture("dcgan", dataset.spec, width=8, latent_dim=16)
    train_model(
        arch, dataset.split("train").images, 20, 32, 0, torch.device("cpu"), 10, compile="default"
    )
    save_checkpoint(arch, tmp_path / CHECKPOINT)
    eager = create_architecture("dcgan", dataset.spec, width=8, latent_dim=16)
    load_checkpoint(eager, tmp_path / CHECKPOINT)
    z = arch.sample_latent(8, generator=torch.Generator().manual_seed(1))
    arch.eval(), eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(arch.generate(z), eager.generate(z), atol=1e-4, rtol=1e-4)


def test_cpu_share_falls_when_other_jobs_take_the_cores():
    """cpu_share is measured, not assumed: busy processes on every core push it down."""
    import os
    import subprocess
    import sys

    dataset = create_dataset("digits")
    images = dataset.split("train").images
    torch.manual_seed(0)
    arch = create_architecture("dcgan", dataset.spec, width=16)
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        shared = train_model(arch, images, 30, 64, 0, torch.device("cpu"), 10)["cpu_share"]
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert 0 < shared < 0.75


def test_evaluations_run_with_tf32_off_whatever_the_global_flags(tmp_path):
    """cuDNN allows TF32 by default; an evaluation's scores must not depend on that."""
    from ganbench.core.evaluator import Evaluator
    from ganbench.core.registry import METRICS
    from ganbench.core.scores import Score
    from ganbench.run.evaluate import run_evaluate
    from tests.conftest import registered

    seen: list[tuple[bool, bool]] = []

    class FlagProbe(Evaluator):
        version = "test"
        defaults: dict = {}
        scores = (Score("probe", "none", "1 when called"),)

        def evaluate(self, ctx):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return {"probe": float(ctx.reals(4).shape[0] == 4)}

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with registered(METRICS, "flag_probe", FlagProbe):
            config = {
                "seed": 0,
                "source": {"real": {"dataset": {"name": "digits", "params": {}}}},
                "evaluator": {"name": "flag_probe", "params": {}},
            }
            out = run_evaluate(config, None, None, tmp_path / "t", torch.device("cpu"), False)
        assert out["scores"] == {"probe": 1.0}
        assert seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
