"""Running one trial: a pure function of its config, returning scores, timings and environment.

These functions never touch the store; the driver records what they return. They may
run in the driver's process or in a worker process.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.core.checkpoint import (
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from ganbench.core.errors import GanbenchError, NonFiniteLossError, NotApplicable
from ganbench.core.evaluator import EvalContext
from ganbench.core.plugins import load_plugin_file
from ganbench.core.registry import create_architecture, create_dataset, evaluator_registry
from ganbench.core.timing import peak_memory_mb, reset_peak_memory, rss_mb, synchronize, timed
from ganbench.run.config import COMPILE_MODES, PRECISIONS, TRAIN_DEFAULTS
from ganbench.run.keys import source_hashes
from ganbench.run.store import pid_alive

CHECKPOINT = "model.safetensors"
SAMPLE_GRID = "samples.png"


# --- environment and seeding ------------------------------------------------------------
def prepare_cpu() -> bool:
    """Flush denormal floats to zero: DCGAN-style N(0, 0.02) weights under Adam drift into the
    denormal range, where x86 CPUs run ~70x slower (measured: 1.02 s vs 0.015 s per step)."""
    return torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GanbenchError(
            "--device cuda was asked for but torch sees no CUDA device: use --device cpu or auto"
        )
    return torch.device(device)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (torch does not report it)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else None


_ENV_CACHE: dict[str, Any] = {}


def environment(device: torch.device) -> dict[str, Any]:
    """Where a result came from: device, library versions, git commit, host."""
    if not _ENV_CACHE:
        from ganbench import __version__

        _ENV_CACHE.update(
            {
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "python": platform.python_version(),
                "host": socket.gethostname(),
                "platform": platform.platform(),
                "git_commit": _git_commit(),
                "ganbench": __version__,
                "cpu": _cpu_name(),
                "cpu_threads": torch.get_num_threads(),
            }
        )
    env = dict(_ENV_CACHE)
    env["device_type"] = device.type
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = _nvidia_driver()
    else:
        env["device"] = f"CPU ({env['cpu']}, {env['cpu_threads']} threads)"
    return env


# --- train trials -------------------------------------------------------------------------
def build(config: dict[str, Any]):
    """The dataset and a fresh architecture that a train config describes."""
    dataset = create_dataset(config["dataset"]["name"], **config["dataset"]["params"])
    arch = create_architecture(
        config["architecture"]["name"], dataset.spec, **config["architecture"]["params"]
    )
    return dataset, arch


def check_precision(device: torch.device, precision: str) -> None:
    """A one-line error for a precision the device cannot run."""
    if precision not in PRECISIONS:
        raise GanbenchError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise GanbenchError(
            f"precision 'tf32' needs a CUDA device, not {device.type}: "
            "set [train] precision to 'fp32' or 'bf16', or run with --device cuda"
        )


@contextmanager
def numerics(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """The training step's numerics, restored afterwards. Everything after training (sample
    grid, generation throughput, every evaluation) runs under ``fp32``, whatever the training
    precision, so that scores from different GPUs and precisions are computed alike.

    * ``fp32``: TF32 off for matmuls and cuDNN convolutions (cuDNN's own default is on, so
      an "fp32" number on an Ampere-or-later GPU would otherwise be partly TF32);
    * ``tf32``: TF32 on for both (CUDA only: a CPU has no TF32);
    * ``bf16``: the step runs under ``torch.autocast(dtype=torch.bfloat16)`` on the CPU or
      the GPU (bf16 has fp32's exponent range, so no loss scaling is needed). The
      architectures' ``train_step`` holds forward and backward together, so the backward
      runs inside the autocast region too, in the dtypes autocast chose for the forward.

    On CUDA ``cudnn.benchmark`` is on (each convolution's fastest algorithm is picked once,
    in the warm-up window that the per-step statistics leave out).
    """
    check_precision(device, precision)
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )
    try:
        with autocast:
            yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = saved


def compile_networks(arch, mode: str) -> None:
    """``torch.compile`` G and D in place (``nn.Module.compile``: state-dict keys unchanged, so
    checkpoints load into an eager network). ``reduce-overhead`` uses CUDA graphs on CUDA,
    for the small launch-bound models. Only ``forward`` is compiled: extra entry points such
    as InfoGAN's ``forward_with_q`` stay eager."""
    if mode not in COMPILE_MODES:
        raise GanbenchError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "none":
        return
    for net in (arch.generator, arch.discriminator):
        if getattr(net, "_compiled_call_impl", None) is None:  # once per network
            net.compile(mode=mode)


def _batches(images: torch.Tensor, batch_size: int, rng: torch.Generator):
    """Endless shuffled minibatches (drop last), one permutation per epoch."""
    n = images.shape[0]
    if n < batch_size:
        raise GanbenchError(f"dataset has {n} training images, fewer than batch_size {batch_size}")
    while True:
        order = torch.randperm(n, generator=rng)
        for start in range(0, n - batch_size + 1, batch_size):
            yield images[order[start : start + batch_size]]


def train_model(
    arch,
    images: torch.Tensor,
    steps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    log_every: int = 25,
    progress: bool = False,
    log_path: Path | None = None,
    precision: str = "fp32",
    compile: str = "none",
) -> dict[str, float]:
    """The harness loop: seeded batches, windowed timing, NaN detection, progress, loss log.

    ``precision`` and ``compile`` are the ``[train]`` switches (see :func:`numerics` and
    :func:`compile_networks`); compilation happens in the first (warm-up) window.

    Steps are timed in windows of ``log_every`` steps with one device sync per window
    (a per-step sync would slow a launch-bound GPU model); the first window is warm-up
    and is excluded from the per-step statistics. Losses are checked for NaN/inf at the
    end of every window, so a diverged run fails within ``log_every`` steps.
    """
    from tqdm.auto import tqdm

    images = images.to(device)
    rng = torch.Generator().manual_seed(seed)
    batches = _batches(images, batch_size, rng)
    arch.to(device).train()
    compile_networks(arch, compile)
    reset_peak_memory(device)
    window_times: list[float] = []
    rows: list[dict[str, float]] = []
    rss = 0.0
    bar = tqdm(
        total=steps, desc=f"train {arch.name}", disable=not progress, leave=False, unit="step"
    )
    synchronize(device)
    start = time.perf_counter()
    cpu_start = time.process_time()
    window_start, step = start, 0
    pending: list[dict[str, torch.Tensor]] = []
    with numerics(device, precision):  # autocast and TF32 flags for the whole loop
        while step < steps:
            pending.append(arch.train_step(next(batches)))
            step += 1
            if step % log_every == 0 or step == steps:
                names = list(pending[0])
                stacked = torch.stack([torch.stack([p[k].float() for k in names]) for p in pending])
                means = stacked.mean(0).tolist()  # one device sync per window
                now = time.perf_counter()
                window_times.append((now - window_start) / len(pending))
                if not torch.isfinite(stacked).all():
                    bad = [
                        k
                        for k, col in zip(names, stacked.T, strict=True)
                        if not torch.isfinite(col).all()
                    ]
                    raise NonFiniteLossError(
                        f"{arch.name}: loss {bad[0]} became non-finite by step {step}"
                    )
                rows.append({"step": step, **dict(zip(names, means, strict=True))})
                bar.update(len(pending))
                bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in rows[-1].items() if k != "step"}, refresh=False
                )
                pending.clear()
                rss = max(rss, rss_mb()) if device.type == "cpu" else rss
                window_start = now
    synchronize(device)
    total = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    bar.close()
    if log_path is not None and rows:
        with open(log_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    timed = window_times[1:] if len(window_times) > 1 else window_times
    timings = {"train_s": total, "steps": float(steps), "peak_mem_mb": peak_memory_mb(device, rss)}
    if device.type == "cpu" and total > 0:
        # the share of its threads' time the loop got: near 1 alone, about 1/2 when another
        # job of as many threads shares the cores (the leaderboard marks timings below 0.75)
        timings["cpu_share"] = cpu_seconds / (total * torch.get_num_threads())
    if timed:
        timings["s_per_step_median"] = float(np.median(timed))
        timings["s_per_step_p90"] = float(np.percentile(timed, 90))
        timings["images_per_s"] = batch_size / timings["s_per_step_median"]
    final = rows[-1] if rows else {}
    return timings | {f"final_{k}": v for k, v in final.items() if k != "step"}


@torch.no_grad()
def generation_throughput(
    arch, device: torch.device, batch_size: int = 256, repeats: int = 5
) -> float:
    """Generated images per second in eval mode, after one warm-up batch."""
    arch.eval()
    z = arch.sample_latent(batch_size, generator=torch.Generator().manual_seed(0))
    arch.generate(z)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        arch.generate(z)
    synchronize(device)
    return batch_size * repeats / (time.perf_counter() - start)


def save_sample_grid(arch, path: Path, n: int, seed: int) -> None:
    """A square grid of ``n`` samples from fixed latents, as PNG."""
    from torchvision.utils import save_image

    arch.eval()
    with torch.no_grad():
        z = arch.sample_latent(n, generator=torch.Generator().manual_seed(seed))
        images = arch.generate(z).clamp(-1, 1).cpu()
    save_image(
        images,
        str(path),
        nrow=int(math.ceil(math.sqrt(n))),
        normalize=True,
        value_range=(-1, 1),
        padding=1,
        pad_value=0.5,
    )


def partial_dir(artifact_dir: Path) -> Path:
    """A fresh folder beside ``artifact_dir`` for one attempt to write into before it is moved
    into place: ``<key>.partial-<pid>-<random>``, so two attempts never share one (two runs
    on a store had; one deleted the other's ``losses.csv``). Partial folders of processes that
    are gone (a killed run) are removed."""
    artifact_dir.parent.mkdir(parents=True, exist_ok=True)
    for old in artifact_dir.parent.glob(artifact_dir.name + ".partial*"):
        pid = old.name.rsplit(".partial", 1)[1].lstrip("-").split("-")[0]
        if not pid.isdigit() or not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = artifact_dir.with_name(
        f"{artifact_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    )
    tmp.mkdir()
    return tmp


def run_train(
    config: dict[str, Any], artifact_dir: Path, device: torch.device, progress: bool
) -> dict[str, Any]:
    """Train one architecture on one dataset; writes checkpoint, sample grid and loss log."""
    seed_everything(config["seed"])
    dataset, arch = build(config)
    tmp = partial_dir(artifact_dir)
    try:
        budget = config["budget"]
        timings = train_model(
            arch,
            dataset.split("train").images,
            budget["steps"],
            budget["batch_size"],
            config["seed"],
            device,
            config["log_every"],
            progress,
            tmp / "losses.csv",
            precision=config.get("precision", TRAIN_DEFAULTS["precision"]),
            compile=config.get("compile", TRAIN_DEFAULTS["compile"]),
        )
        scores = {k: timings.pop(k) for k in list(timings) if k.startswith("final_")}
        start = time.perf_counter()
        # the weights' hash: two runs of one key trained bit-identically exactly when these agree
        weights = save_checkpoint(arch, tmp / CHECKPOINT)
        with numerics(device, "fp32"):  # whatever the training precision: the grid in plain fp32
            save_sample_grid(arch, tmp / SAMPLE_GRID, config["grid_size"], config["seed"])
            timings["save_s"] = time.perf_counter() - start
            timings["generate_images_per_s"] = generation_throughput(arch, device)
        timings["params_generator"] = float(count_parameters(arch.generator))
        timings["params_discriminator"] = float(count_parameters(arch.discriminator))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed attempt leaves nothing behind
        raise
    shutil.rmtree(artifact_dir, ignore_errors=True)
    os.replace(tmp, artifact_dir)
    return {"scores": scores, "timings": timings, "outputs": {"weights_sha256": weights}}


# --- evaluate trials ----------------------------------------------------------------------
def load_trained(train_config: dict[str, Any], artifact_dir: Path, device: torch.device):
    dataset, arch = build(train_config)
    load_checkpoint(arch, artifact_dir / CHECKPOINT)
    return dataset, arch.to(device).eval()


def feature_cache_dir(
    config: dict[str, Any], train_artifacts: Path | None, artifact_dir: Path, device: torch.device
) -> Path:
    """The folder where the evaluations of one set of samples share their features: next to
    the trial folders, named by what the samples and features depend on (the trained
    model's trial key or the real-data reference's config, the seed, the domain network
    named by its weights' sha256, and the device type)."""
    source = train_artifacts.name if train_artifacts is not None else config["source"]
    ident = {
        "source": source,
        "seed": config["seed"],
        "domain": config.get("domain"),
        "device": device.type,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return artifact_dir.parent / "_features" / digest


def run_evaluate(
    config: dict[str, Any],
    train_config: dict[str, Any] | None,
    train_artifacts: Path | None,
    artifact_dir: Path,
    device: torch.device,
    progress: bool,
    domain_artifacts: Path | None = None,
    evaluator_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score one trained model (or the real-data reference) with one evaluator, built with
    ``evaluator_params`` where the key holds other values (Evaluator.key_params)."""
    seed_everything(config["seed"])
    if "train" in config["source"]:
        dataset, model = load_trained(train_config, train_artifacts, device)
    else:
        ds = config["source"]["real"]["dataset"]
        dataset, model = create_dataset(ds["name"], **ds["params"]), None
    ev = config["evaluator"]
    params = ev["params"] if evaluator_params is None else evaluator_params
    evaluator = evaluator_registry(ev["name"]).create(ev["name"], **params)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(
        model=model,
        dataset=dataset,
        device=device,
        seed=config["seed"],
        artifact_dir=artifact_dir,
        quiet=not progress,
        domain_dir=domain_artifacts,
        domain_sha256=(config.get("domain") or {}).get("weights"),
        feature_dir=feature_cache_dir(config, train_artifacts, artifact_dir, device),
    )
    with timed(device) as cost, numerics(device, "fp32"):  # TF32 off: else cuDNN's default
        scores = evaluator.evaluate(ctx)  # would make fp32 scores partly TF32
    declared = {s.name for s in evaluator.scores}
    if set(scores) != declared:
        raise GanbenchError(
            f"evaluator {evaluator.name} returned scores {sorted(scores)} but declares {sorted(declared)}"
        )
    bad = [k for k, v in scores.items() if not math.isfinite(float(v))]
    if bad:
        raise GanbenchError(f"evaluator {evaluator.name} produced a non-finite {bad[0]}")
    return {
        "scores": {k: float(v) for k, v in scores.items()},
        "timings": {"evaluate_s": cost["seconds"], "peak_mem_mb": cost["peak_mem_mb"]},
    }


def source_provenance(config: dict[str, Any], train_config: dict[str, Any] | None) -> dict:
    """The source files defining a trial's components, with their hashes: provenance kept in
    the record (keys hold declared versions, not these)."""
    from ganbench.core.registry import get_architecture, get_dataset
    from ganbench.datasets.domain import DomainNetwork

    classes: list[type] = []
    for cfg in (config, train_config or {}):
        if "architecture" in cfg:
            classes.append(get_architecture(cfg["architecture"]["name"]))
        if "dataset" in cfg:
            classes.append(get_dataset(cfg["dataset"]["name"]))
    if "evaluator" in config:
        name = config["evaluator"]["name"]
        classes.append(evaluator_registry(name).get(name))
    if "real" in config.get("source", {}):
        classes.append(get_dataset(config["source"]["real"]["dataset"]["name"]))
    if config.get("kind") == "domain" or "domain" in config:
        classes.append(DomainNetwork)
    return source_hashes(classes)


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one trial described by a plain dict; never raises: failures come back as status 'failed'."""
    # domain networks always train on the CPU, so every device scores with the same one
    device = torch.device("cpu" if payload["kind"] == "domain" else payload["device"])
    env = environment(device)
    env["flush_denormal"] = prepare_cpu()
    try:
        for plugin in payload.get("plugins", []):
            load_plugin_file(plugin)
        env["code"] = source_provenance(payload["config"], payload.get("train_config"))
        if payload["kind"] == "domain":
            from ganbench.run.domain import run_domain

            out = run_domain(payload["config"], Path(payload["artifact_dir"]), payload["progress"])
        elif payload["kind"] == "train":
            out = run_train(
                payload["config"], Path(payload["artifact_dir"]), device, payload["progress"]
            )
        else:
            out = run_evaluate(
                payload["config"],
                payload.get("train_config"),
                Path(payload["train_artifacts"]) if payload.get("train_artifacts") else None,
                Path(payload["artifact_dir"]),
                device,
                payload["progress"],
                Path(payload["domain_artifacts"]) if payload.get("domain_artifacts") else None,
                payload.get("evaluator_params"),
            )
        return {"status": "finished", "env": env, **out}
    except NotApplicable as exc:  # found out while evaluating (e.g. a D captum cannot explain)
        return {"status": "n/a", "env": env, "error": str(exc)}
    except GanbenchError as exc:
        return {"status": "failed", "env": env, "error": str(exc)}
    except Exception as exc:  # a bug or a library error in one trial must not stop the matrix
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        return {"status": "failed", "env": env, "error": f"{type(exc).__name__}: {exc}{where}"}
