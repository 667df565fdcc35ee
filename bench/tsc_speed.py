"""Training speed of InceptionTime's and LITE's networks: lamina against the same architecture in
Keras 3 on JAX, as aeon users run it (bench/keras_tsc.py), side by side in one run.

    python bench/tsc_speed.py [--models inception,lite] [--frameworks lamina,keras_jax]
        [--n 256] [--length 150] [--epochs 4] [--repeats 2] [--threads 1] [--out bench/results]

Each measurement is a fresh process (`--worker`) that pins itself to `--threads` cores, imports
one framework, builds the network for GunPoint-shaped random data (n series of `length` x 1, two
classes), compiles it with Adam(1e-3) and sparse categorical cross-entropy and fits it with batch
64 (the papers' protocol). It reports every epoch's wall time (the epoch end reads the loss, which
waits for JAX's asynchronous steps) and the total. Frameworks are interleaved per repeat, so a
change of the machine's load falls on both; the figure is the median over repeats of each run's
median epoch after the first (which holds JAX's compilation), and the total time of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64
CLASSES = 2


def _data(n, length):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((n, length, 1), dtype=np.float32), rng.integers(0, CLASSES, n)


def worker(framework, model_name, n, length, epochs, threads):
    from bench.worker import peak_rss_mb, pin_to_cores, versions

    pin_to_cores(threads)
    if framework == "keras_jax":
        os.environ["KERAS_BACKEND"] = "jax"
        import keras

        from bench.keras_tsc import BUILDERS

        model = BUILDERS[model_name](keras, (length, 1), CLASSES)
        optimizer, base = keras.optimizers.Adam(1e-3), keras.callbacks.Callback
    else:
        import torch

        torch.set_num_threads(threads)
        import lamina
        from lamina.tsc import MODELS

        model = MODELS[model_name]((length, 1), CLASSES)
        optimizer, base = lamina.optimizers.Adam(1e-3), lamina.callbacks.Callback

    class EpochTimes(base):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])
            times.append(time.perf_counter() - self.start)

    times = []
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = _data(n, length)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[EpochTimes()])
    total = time.perf_counter() - start
    return {"framework": framework, "model": model_name, "epoch_seconds": times, "total_seconds": total,
            "params": int(model.count_params()), "peak_rss_mb": peak_rss_mb(), "versions": versions()}


def _run_worker(args, framework, model):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "bench.tsc_speed", "--worker", framework, "--models", model,
           "--n", str(args.n), "--length", str(args.length), "--epochs", str(args.epochs),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        return {"framework": framework, "model": model, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="inception,lite")
    parser.add_argument("--frameworks", default="lamina,keras_jax")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.models, args.n, args.length, args.epochs, args.threads)))
        return None

    frameworks, models = args.frameworks.split(","), args.models.split(",")
    load_before, runs = _load(), []
    for model in models:
        for _ in range(args.repeats):
            for framework in frameworks:
                runs.append(_run_worker(args, framework, model))
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "versions"}), flush=True)
    load_after = _load()

    def summary(model, framework):
        ok = [r for r in runs if (r["model"], r["framework"]) == (model, framework) and "error" not in r]
        if not ok:
            return None
        return {"epoch": statistics.median(statistics.median(r["epoch_seconds"][1:]) for r in ok),
                "total": statistics.median(r["total_seconds"] for r in ok), "params": ok[0]["params"],
                "rss": max(r["peak_rss_mb"] for r in ok), "runs": len(ok)}

    stamp = time.strftime("%Y%m%d-%H%M%S")
    lines = [f"# TSC training speed, {stamp}", "",
             f"n = {args.n} random series of {args.length} x 1, 2 classes, batch {BATCH}, "
             f"{args.epochs} epochs per run, {args.repeats} interleaved repeats, "
             f"{args.threads} thread(s) per process; "
             f"load average before {load_before}, after {load_after}; {os.cpu_count()} CPUs.", "",
             "| model | framework | params | median epoch (s) | total (s) | peak RSS (MB) "
             "| keras_jax / lamina |",
             "|---|---|---|---|---|---|---|"]
    for model in models:
        peer = summary(model, "keras_jax")
        for framework in frameworks:
            s = summary(model, framework)
            if s is None:
                lines.append(f"| {model} | {framework} | failed | | | | |")
                continue
            ratio = f"{peer['epoch'] / s['epoch']:.2f} (epoch), {peer['total'] / s['total']:.2f} (total)" \
                if peer and framework == "lamina" else ""
            lines.append(f"| {model} | {framework} | {s['params']:,} | {s['epoch']:.3f} | {s['total']:.2f} | "
                         f"{s['rss']:.0f} | {ratio} |")
    versions = {k: v for r in runs for k, v in r.get("versions", {}).items()}
    lines += ["", "Ratios above 1: lamina is faster. Versions: "
              + ", ".join(f"{k} {v}" for k, v in versions.items()),
              "", "Command: `python bench/tsc_speed.py " + " ".join(argv or sys.argv[1:]) + "`"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"tsc-speed-{stamp}.md").write_text("\n".join(lines) + "\n")
    record = {"args": vars(args), "load_before": load_before, "load_after": load_after, "runs": runs}
    (out / f"tsc-speed-{stamp}.json").write_text(json.dumps(record, indent=2))
    print("\n".join(lines))
    return runs


if __name__ == "__main__":
    main()
