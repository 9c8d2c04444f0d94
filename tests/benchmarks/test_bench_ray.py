"""Executor throughput: trials per hour of a matrix of short trials, Ray vs local.

The same matrix (DCGAN on digits, several seeds, each trained briefly and scored by MMD)
runs from an empty store each round with the local executor (in-process, and 2 spawned
workers: the reference) and the Ray executor with 1 and 2 trials in flight on a local
2-CPU cluster that is already up (its start-up time is reported apart, in extra_info).
Every trial runs on one thread, so "N workers" means N cores. `make bench` prints each
run's trials per hour beside the timing table (group "executor").
"""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from ganbench.run.config_load import parse_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store

SEEDS = 4
MATRIX = {
    "name": "bench-executor",
    "seeds": list(range(SEEDS)),
    "architectures": ["dcgan"],
    "datasets": ["digits"],
    "metrics": ["mmd"],
    "train": {"steps": 100, "batch_size": 32, "log_every": 25, "grid_size": 16},
    "architecture": {"dcgan": {"width": 8, "latent_dim": 16}},
    "metric": {"mmd": {"n": 64, "permutations": 50}},
}
TRIALS = 2 * SEEDS  # a train and an evaluate trial per seed


@pytest.fixture(scope="module")
def cfg():
    return parse_config(MATRIX, "bench-executor.toml")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield time.perf_counter() - start
    ray.shutdown()


@pytest.fixture
def one_thread_driver():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _throughput(benchmark, request, tmp_path, cfg, **run_args) -> None:
    """Benchmark the whole matrix from a fresh store per round; report trials per hour."""
    stores = (tmp_path / f"round{i}" / "s.sqlite" for i in itertools.count())

    def fresh():
        return (cfg, Store(next(stores))), {"device": "cpu", "quiet": True, **run_args}

    summaries = []
    benchmark.pedantic(
        lambda c, s, **kw: summaries.append(run_matrix(c, s, **kw)),
        setup=fresh,
        rounds=2,
        warmup_rounds=1,
    )
    assert all(s.finished == TRIALS and not s.failed for s in summaries)
    per_hour = TRIALS * 3600 / benchmark.stats.stats.mean
    benchmark.extra_info["trials_per_hour"] = round(per_hour)
    with request.getfixturevalue("capsys").disabled():  # shown by `make bench` (pytest -q)
        print(f"\n{request.node.name}: {per_hour:.0f} trials/hour ({TRIALS} trials)")


@pytest.mark.benchmark(group="executor")
def test_bench_local_1_worker_reference(benchmark, request, tmp_path, cfg, one_thread_driver):
    _throughput(benchmark, request, tmp_path, cfg)


@pytest.mark.benchmark(group="executor")
def test_bench_local_2_workers_reference(benchmark, request, tmp_path, cfg):
    _throughput(benchmark, request, tmp_path, cfg, workers=2)


@pytest.mark.benchmark(group="executor")
@pytest.mark.parametrize("workers", [1, 2])
def test_bench_ray(benchmark, request, tmp_path, cfg, ray_cluster, workers):
    benchmark.extra_info["cluster_start_s"] = round(ray_cluster, 2)
    _throughput(benchmark, request, tmp_path, cfg, executor="ray", workers=workers)
