"""The Ray executor on a real local Ray cluster: same scores as local, worker death, store state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ganbench.core.errors import ConfigError
from ganbench.run.config_load import load_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store

GANBENCH = [sys.executable, "-m", "ganbench.cli"]

# a train step that SIGKILLs its own worker process; KILL_ONCE only on the first attempt
KILLER = """
import os
import signal
from pathlib import Path

from ganbench.architectures.dcgan import DCGAN
from ganbench.core.registry import register_architecture

MARKER = Path(__file__).with_name("killed-once")


@register_architecture("{name}")
class Killer(DCGAN):
    def train_step(self, real):
        if {always} or not MARKER.exists():
            MARKER.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().train_step(real)
"""


@pytest.fixture(scope="module")
def ray_cluster():
    """One real local Ray cluster of 2 CPUs for the module (it takes seconds to start)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _scores(store: Store) -> dict[str, dict | None]:
    return {r.key: r.scores for r in store.records()}


def _plugin(tmp_path: Path, name: str, always: bool) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(KILLER.format(name=name, always=always))
    return path


def _arch(config_replace: str) -> dict[str, str]:
    return {
        'architectures = ["dcgan"]': f'architectures = ["{config_replace}"]',
        "[architecture.dcgan]": f"[architecture.{config_replace}]",
    }


def test_ray_gives_the_local_executors_scores(ray_cluster, tiny_config, tmp_path, one_thread):
    cfg = load_config(str(tiny_config({"seeds = [0]": "seeds = [0, 1]"})))
    ray_store = Store(tmp_path / "ray" / "s.sqlite")
    summary = run_matrix(cfg, ray_store, device="cpu", quiet=True, executor="ray")
    local_store = Store(tmp_path / "local" / "s.sqlite")
    run_matrix(
        cfg, local_store, device="cpu", quiet=True, in_process=True
    )  # one thread, as each Ray task uses
    assert summary.finished == 6 and not summary.failed
    assert _scores(ray_store) == _scores(local_store)
    assert all(s for s in _scores(ray_store).values())
    records = ray_store.records()
    assert {r.status for r in records} == {"finished"} and {r.attempts for r in records} == {1}
    assert ray_cluster.is_initialized()  # a session it did not start is left up
    rerun = run_matrix(cfg, ray_store, device="cpu", quiet=True, executor="ray")
    assert rerun.skipped == 6 and rerun.finished == 0


@pytest.fixture
def plugin_arch(tmp_path):
    """Write a killer plugin and load it here too (the driver expands the matrix with it);
    its registration is dropped afterwards, so later tests see the registry as it was."""
    from ganbench.core.plugins import load_plugin_file
    from ganbench.core.registry import ARCHITECTURES

    names = []

    def make(name: str, always: bool) -> Path:
        path = _plugin(tmp_path, name, always)
        load_plugin_file(path)
        names.append(name)
        return path

    yield make
    for name in names:
        ARCHITECTURES._classes.pop(name, None)


def test_a_worker_killed_mid_trial_is_retried(
    ray_cluster, tiny_config, plugin_arch, tmp_path, one_thread
):
    plugin = plugin_arch("killonce", always=False)
    cfg = load_config(str(tiny_config(_arch("killonce"))))
    store = Store(tmp_path / "ray" / "s.sqlite")
    summary = run_matrix(
        cfg, store, device="cpu", quiet=True, plugins=[str(plugin)], executor="ray"
    )
    assert (tmp_path / "killed-once").exists(), "the first attempt did not kill its worker"
    assert not summary.failed and summary.finished == 3
    records = {r.kind + str(r.labels.get("evaluator")): r for r in store.records()}
    assert all(r.status == "finished" for r in records.values())
    assert records["trainNone"].attempts == 2  # started, killed, retried
    assert records["evaluatec2st"].attempts == records["evaluatemmd"].attempts == 1
    # the retry is a clean rerun: the same scores as a local run that is never killed
    local = Store(tmp_path / "local" / "s.sqlite")
    run_matrix(cfg, local, device="cpu", quiet=True, plugins=[str(plugin)], in_process=True)
    assert _scores(store) == _scores(local)


@pytest.mark.slow  # 23 s; test_a_worker_killed_mid_trial_is_retried keeps Ray's fault path in make test
def test_cli_a_worker_dead_for_good_fails_its_trial_only(tiny_config, tmp_path):
    """Through the command line, on a local cluster it starts from ``[ray]`` and shuts down."""
    pytest.importorskip("ray")
    plugin = _plugin(tmp_path, "killalways", always=True)
    replace = {'architectures = ["dcgan"]': 'architectures = ["dcgan", "killalways"]'}
    extra = "[architecture.killalways]\nwidth = 8\n\n[ray]\nnum_cpus = 2\nmax_retries = 0\n"
    config = tiny_config(replace, extra=extra)
    db = tmp_path / "runs" / "s.sqlite"
    out = subprocess.run(
        [*GANBENCH, "run", str(config), "--executor", "ray", "--store", str(db), "--quiet"]
        + ["--plugin", str(plugin)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard: a local cluster on 2 busy cores took 247 s
    )
    assert out.returncode == 3, out.stdout + out.stderr
    records = Store(db).records()
    assert "running" not in {r.status for r in records}
    dead = [r for r in records if r.labels["architecture"] == "killalways"]
    train = next(r for r in dead if r.kind == "train")
    assert train.status == "failed" and train.attempts == 1
    assert "ray worker died" in train.error and "max_retries = 0" in train.error
    assert all(r.status == "failed" and "train trial" in r.error for r in dead if r != train)
    assert all(r.status == "finished" for r in records if r.labels["architecture"] == "dcgan")


def test_without_ray_the_error_is_one_line(tiny_config, tmp_path):
    db = tmp_path / "s.sqlite"
    config = tiny_config({'name = "tiny"': 'name = "tiny"\nexecutor = "ray"'})
    for args in (
        ["--executor", "ray"],
        ["--address", "127.0.0.1:6379"],
        [],  # the config asks for ray
    ):
        code = (
            "import sys; sys.modules['ray'] = None; from ganbench.cli import main; "
            f"sys.exit(main(['run', {str(config)!r}, '--store', {str(db)!r}, *{args!r}]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
        )
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().count("\n") == 0, out.stderr
        assert "pip install 'ganbench[ray]'" in out.stderr
        assert not db.exists()  # nothing was touched


def test_address_with_the_local_executor_is_refused(tiny_config, tmp_path):
    from ganbench.cli import main

    config = tiny_config()
    argv = ["run", str(config), "--executor", "local", "--address", "10.0.0.1:6379"]
    assert main([*argv, "--store", str(tmp_path / "s.sqlite")]) == 2
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize(
    "table, message",
    [
        ("num_gpus = 1", "unknown key 'num_gpus' (allowed: num_cpus, num_cpus_per_trial"),
        ("gpus_per_trial = 2", "key 'gpus_per_trial' must be in (0, 1]"),
        ("gpus_per_trial = 0", "key 'gpus_per_trial' must be in (0, 1]"),
        ('max_retries = "3"', "key 'max_retries' must be an integer"),
        ("max_retries = -1", "key 'max_retries' must be >= 0"),
        ("num_cpus_per_trial = true", "key 'num_cpus_per_trial' must be a number"),
        ("num_cpus = 0", "key 'num_cpus' must be at least 1"),
    ],
)
def test_bad_ray_options_name_the_key(tiny_config, table, message):
    with pytest.raises(ConfigError, match=r"tiny\.toml: \[ray\]") as err:
        load_config(str(tiny_config(extra=f"[ray]\n{table}\n")))
    assert message in str(err.value)


def test_ray_options_are_read_and_leave_trial_keys_alone(tiny_config):
    from ganbench.run.trials import expand

    plain = load_config(str(tiny_config()))
    extra = "[ray]\nnum_cpus_per_trial = 2\ngpus_per_trial = 0.25\nmax_retries = 3\n"
    cfg = load_config(str(tiny_config(extra=textwrap.dedent(extra), name="ray.toml")))
    assert (cfg.ray.num_cpus_per_trial, cfg.ray.gpus_per_trial, cfg.ray.max_retries) == (2, 0.25, 3)
    assert [t.key for t in expand(cfg, "cpu")] == [t.key for t in expand(plain, "cpu")]
