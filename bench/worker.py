"""One framework on one workload, in a process of its own: `python -m bench.worker '<spec json>'`.

The parent (bench/run.py) starts one worker per measurement, so that frameworks never share a
process: no framework's imports, thread pools, caches or memory show in another's figures. The
worker pins itself to `threads` cores before importing any framework, runs the spec's training
jobs (a fresh model for each, from the workload's shared initial weights), times single-sample
prediction, and prints one JSON object on stdout (anything the frameworks print goes to stderr).

Spec keys: framework, module (under bench.frameworks), model, jobs (a list of {batch_size, n,
epochs}), threads, initial_loss (bool), predict_calls (0: no latency), predict_all (optional
{n, batch_size, repeats}: seconds of predicting n samples in batches, the first call untimed),
plus the framework options (lamina_compile, compile_backend, device: the torch loop's device).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import statistics
import sys
import time

PREDICT_WARMUPS = 10


def pin_to_cores(threads: int):
    """Restrict this process to `threads` of its allowed cores; XLA sizes its pool from this mask."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def latency_ms(call, calls: int) -> dict:
    for _ in range(PREDICT_WARMUPS):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    quantiles = statistics.quantiles(times, n=10) if calls > 1 else times * 9
    return {"p50": statistics.median(times), "p90": quantiles[8], "mean": statistics.fmean(times),
            "calls": calls}


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def predict_seconds(runner, x, batch_size, repeats) -> list[float]:
    runner.predict_all(x, batch_size)  # compilation, warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.predict_all(x, batch_size)  # numpy out: the work is done when it returns
        times.append(time.perf_counter() - start)
    return times


def accelerator() -> dict:
    """Where the framework ran ("cuda", "gpu", "cpu") and its accelerator's peak memory (MiB)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        device = jax.devices()[0]
        stats = device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return {"device": device.platform, "peak_device_mb": None if peak is None else peak / 2**20}
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {"device": "cuda", "peak_device_mb": torch.cuda.max_memory_allocated() / 2**20}
    return {"device": "cpu", "peak_device_mb": None}


def versions() -> dict:
    found = {}
    for name in ("lamina", "torch", "keras", "jax", "numpy"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


def run(spec: dict) -> dict:
    cpus = pin_to_cores(spec["threads"])
    import torch

    torch.set_num_threads(spec["threads"])
    from bench import workloads

    framework = importlib.import_module(f"bench.frameworks.{spec['module']}")
    workload = workloads.get(spec["model"])
    weights = workloads.initial_weights(workload)
    result = {"framework": spec["framework"], "model": spec["model"], "jobs": []}
    runner = None
    for job in spec["jobs"]:
        x, y = workloads.dataset(workload, job["n"])
        runner = framework.make_runner(spec["framework"], workload, weights, spec)
        if spec.get("initial_loss") and "initial_loss" not in result:
            result["initial_loss"] = runner.initial_loss(x[:256], y[:256])
        result["jobs"].append({**job, "epoch_seconds": runner.train(x, y, job["batch_size"], job["epochs"])})
        if hasattr(runner, "setting"):  # what lamina's thread probe chose for the training loop
            result["jobs"][-1]["setting"] = runner.setting()
    if spec.get("predict_all"):
        job = spec["predict_all"]
        runner = runner or framework.make_runner(spec["framework"], workload, weights, spec)
        x = workloads.dataset(workload, job["n"])[0]
        seconds = predict_seconds(runner, x, job["batch_size"], job["repeats"])
        result["predict_all"] = {**job, "seconds": seconds}
    if spec.get("predict_calls"):
        runner = runner or framework.make_runner(spec["framework"], workload, weights, spec)
        x1 = workloads.dataset(workload, 1)[0]
        result["predict_ms"] = {name: latency_ms(call, spec["predict_calls"])
                                for name, call in runner.predict_paths(x1).items()}
    # The 1-minute load average as the worker ends: about `threads` when the machine was ours alone.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result.update(peak_rss_mb=peak_rss_mb(), versions=versions(), threads=torch.get_num_threads(), cpus=cpus,
                  load_average=load, **accelerator())
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    with contextlib.redirect_stdout(sys.stderr):
        result = run(spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
