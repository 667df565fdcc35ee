"""What a machine with an NVIDIA GPU checks in a few minutes; without CUDA it says so and exits 0.

    python bench/gpu_check.py            # everything (about 10 minutes on an H100)
    python bench/gpu_check.py --quick    # smaller data and fewer repeats
    python bench/gpu_check.py --smoke    # on the CPU, 2 steps per model: the script works (~3 min)

1. Parity: a handful of layers (dense, convolutions, recurrent, every norm, pooling) built once on
   the CPU, where the test suite holds them to Keras, and copied to the GPU; outputs, input and
   weight gradients and updated moving statistics must agree (TF32 off, 1e-4).
2. Mixed precision and export on the GPU: fit under mixed_bfloat16 and mixed_float16 (loss
   scaling) with finite losses and float32 weights; a CUDA model exported to ONNX predicts as
   `predict` does in onnxruntime.
3. Speed on five models (bench/workloads.py: the bench's FCN, LSTM(64) and MLP, the zoo's ResNet
   at batch 64, a Conv2D image classifier at batch 256): lamina's `fit` (default, and
   `compile(jit_compile=True)`), a plain torch loop, the torch.compile'd loop
   (bench/frameworks/torch_loop.py) and Keras 3 on JAX, each in a process of its own
   (bench/worker.py), one run each: training samples/s over the epochs after the first, predict
   samples/s over the data in batches, the accelerator's peak memory and the process's peak RSS.
4. The normalization layers of bench/norms.py, forward + backward on GPU-sized inputs: achieved
   bandwidth (5 passes over the tensor, as bench/norms.py counts) against the GPU's measured copy
   bandwidth and its theoretical peak.

Everything printed is also written to bench/results/gpu_check-<card>-<date>.txt, whose last line
is `fit lamina / best torch loop: fcn=R lstm=R mlp=R resnet=R conv2d=R` (R: lamina fit's training
samples/s over the better of the two torch loops'). Keras 3 on JAX runs on the GPU only where
jax's CUDA build is installed (`pip install -U "jax[cuda12]"`); its row names the device it used.

Exit status: 0 when every parity and precision check passed (or there is no GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402
from bench import norms, report, run, workloads  # noqa: E402
from bench.frameworks import FRAMEWORKS, LAMINA_SWITCH, lamina_switch  # noqa: E402
from lamina import layers, mixed_precision  # noqa: E402

TOLERANCE = 1e-4
GPU_NORM_SHAPES = [(256, 1024, 128), (64, 64, 64, 128)]  # 128 MiB of float32 each
SMOKE_NORM_SHAPES = [(4, 32, 8), (2, 4, 4, 8)]
SPEED_MODELS = ("fcn", "lstm", "mlp", "resnet", "conv2d")
# (row label, framework id, worker options); the two torch loops are the "torch loop" peers.
SPEED_ROWS = (
    ("lamina fit", "lamina", {}),
    ("lamina fit, jit_compile=True", LAMINA_SWITCH, {"lamina_compile": {"jit_compile": True}}),
    ("torch loop", "torch", {}),
    ("torch.compile loop", "torch_compile", {}),
    ("Keras 3 / JAX", "keras_jax", {}),
)
TORCH_LOOPS = ("torch", "torch_compile")
# (steps per epoch, epochs, timed predict calls) per mode; the first epoch and call are not timed.
SIZES = {"full": (64, 4, 3), "quick": (16, 2, 2), "smoke": (2, 2, 1)}


def parity_cases():
    """(name, layer factory, input shape, call keyword arguments)."""
    return [
        ("Dense relu", lambda: layers.Dense(16, activation="relu"), (8, 12), {}),
        ("Conv1D causal", lambda: layers.Conv1D(8, 5, padding="causal"), (4, 32, 3), {}),
        ("Conv1D same, even kernel", lambda: layers.Conv1D(8, 8, padding="same"), (4, 32, 3), {}),
        ("Conv3D same", lambda: layers.Conv3D(4, 2, padding="same"), (2, 5, 6, 7, 3), {}),
        ("Conv2D same", lambda: layers.Conv2D(6, 3, padding="same"), (2, 10, 10, 3), {}),
        ("LSTM sequences", lambda: layers.LSTM(16, return_sequences=True), (4, 20, 5), {}),
        ("GRU", lambda: layers.GRU(8), (4, 20, 5), {}),
        ("BatchNormalization train", layers.BatchNormalization, (4, 32, 8), {"training": True}),
        ("BatchNormalization infer", layers.BatchNormalization, (4, 32, 8), {"training": False}),
        ("LayerNormalization", layers.LayerNormalization, (4, 32, 8), {}),
        ("GroupNormalization", lambda: layers.GroupNormalization(groups=4), (4, 32, 8), {}),
        ("InstanceNormalization", layers.InstanceNormalization, (4, 32, 8), {}),
        ("SwitchableNormalization", layers.SwitchableNormalization, (4, 32, 8), {"training": True}),
        ("MaxPooling1D", lambda: layers.MaxPooling1D(2), (4, 32, 8), {}),
        ("GlobalAveragePooling1D", layers.GlobalAveragePooling1D, (4, 32, 8), {}),
    ]


def run_on(layer, x, cotangent, kwargs):
    x = x.clone().requires_grad_()
    out = layer(x, **kwargs)
    out.backward(cotangent.to(out.device))
    return ([out.detach().cpu(), x.grad.cpu()] + [p.grad.cpu() for p in layer.parameters()]
            + [torch.as_tensor(w) for w in layer.get_weights()])


def check_parity(device) -> list[str]:
    failures = []
    for name, make, shape, kwargs in parity_cases():
        torch.manual_seed(0)
        layer = make()
        x = torch.randn(shape)
        with torch.no_grad():
            cotangent = torch.randn_like(layer(x))  # builds the layer on the CPU
        on_gpu = copy.deepcopy(layer).to(device)
        cpu_values = run_on(layer, x, cotangent, kwargs)
        gpu_values = run_on(on_gpu, x.to(device), cotangent, kwargs)
        worst = max(float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(cpu_values, gpu_values))
        ok = worst <= TOLERANCE
        print(f"  {name:<28} max |cpu - gpu| {worst:.2e}  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"parity {name}")
    return failures


def small_fcn():
    model = lamina.Sequential([
        layers.Input((64, 1)),
        layers.Conv1D(32, 8, padding="same", use_bias=False), layers.BatchNormalization(),
        layers.Activation("relu"), layers.GlobalAveragePooling1D(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def check_precision_and_export(device) -> list[str]:
    failures = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 64, 1)).astype("float32")
    y = rng.integers(0, 3, 512)
    for policy in ("mixed_bfloat16", "mixed_float16"):
        mixed_precision.set_global_policy(policy)
        try:
            model = small_fcn()
            losses = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history["loss"]
        finally:
            mixed_precision.set_global_policy("float32")
        float32 = all(p.dtype == torch.float32 for p in model.parameters())
        ok = bool(np.isfinite(losses).all()) and float32 and model._device().type == "cuda"
        print(f"  fit under {policy:<15} losses {np.round(losses, 4).tolist()}, weights float32: {float32}"
              f"  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"precision {policy}")
    try:
        import onnxruntime
    except ImportError:
        print("  export: onnxruntime is not installed (pip install 'lamina[export]'); skipped")
        return failures
    model = small_fcn()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/fcn.onnx"
        model.export(path, verbose=False)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        onnx_probs = session.run(None, {session.get_inputs()[0].name: x[:64]})[0]
    worst = float(np.abs(onnx_probs - model.predict(x[:64], verbose=0)).max())
    ok = worst <= TOLERANCE
    print(f"  CUDA model exported to ONNX: max |onnxruntime - predict| {worst:.2e}  {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append("export")
    return failures


def speed(device, mode, compile_backend, timeout) -> dict:
    """Section 3; returns {(model, framework id): worker result}."""
    steps, epochs, repeats = SIZES[mode]
    registry = {**FRAMEWORKS, LAMINA_SWITCH: lamina_switch({"jit_compile": True})}
    threads = 1 if mode == "smoke" else len(run._allowed_cpus())
    results = {}
    print(f"  {'model':<7} {'framework':<29} {'fit samples/s':>13} {'predict samples/s':>17} "
          f"{'peak device MiB':>15} {'peak RSS MiB':>12}  device")
    for model in SPEED_MODELS:
        workload = workloads.get(model)
        n = steps * workload.batch_size
        for label, fw_id, options in SPEED_ROWS:
            missing = registry[fw_id].missing()
            if missing:
                print(f"  {model:<7} {label:<29} skipped: {', '.join(missing)} not installed")
                continue
            batch = workload.batch_size
            spec = {**options, "model": model, "device": str(device), "compile_backend": compile_backend,
                    "jobs": [{"kind": "compare", "batch_size": batch, "n": n, "epochs": epochs}],
                    "predict_all": {"n": n, "batch_size": batch, "repeats": repeats}}
            result = results[model, fw_id] = run.run_worker(registry[fw_id], spec, threads, timeout)
            if "error" in result:
                print(f"  {model:<7} {label:<29} error: {result['error']}")
                continue
            peak = result.get("peak_device_mb")
            peak_text = "-" if peak is None else f"{peak:.0f}"
            print(f"  {model:<7} {label:<29} {fit_rate(result):13.0f} {predict_rate(result):17.0f} "
                  f"{peak_text:>15} {result['peak_rss_mb']:12.0f}  {result['device']}")
    return results


def fit_rate(result) -> float:
    return report.samples_per_second(result["jobs"][0])


def predict_rate(result) -> float:
    job = result["predict_all"]
    return job["n"] / statistics.median(job["seconds"])


def ratio_line(title, results, lamina_id, rate) -> str:
    """`title: model=R ...`: lamina's rate over the better torch loop's, per model."""
    parts = []
    for model in SPEED_MODELS:
        ours = results.get((model, lamina_id), {"error": "not run"})
        loops = [results[model, fw] for fw in TORCH_LOOPS
                 if "error" not in results.get((model, fw), {"error": "not run"})]
        parts.append(f"{model}=" + ("n/a" if "error" in ours or not loops
                                    else f"{rate(ours) / max(rate(r) for r in loops):.2f}"))
    return f"{title}: " + " ".join(parts)


def device_ms(fn, repeats, device) -> float:
    """Median milliseconds of `fn` on `device` (CUDA events on a GPU), after warm-ups."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type != "cuda":
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_bandwidth_gbs(device) -> float | None:
    """The memory's theoretical bandwidth from its clock and bus width (double data rate)."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "memory_clock_rate", None)
    bus_bits = getattr(props, "memory_bus_width", None)
    if not clock_khz or not bus_bits:
        return None
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9


def copy_bandwidth_gbs(device, repeats, mib) -> float:
    """Bytes read plus bytes written per second by a tensor copy of `mib` MiB on the device."""
    src = torch.ones(mib * 2**18, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / device_ms(lambda: dst.copy_(src), repeats, device) / 1e6


def norm_bandwidth(device, repeats, shapes) -> None:
    copy_gbs = copy_bandwidth_gbs(device, repeats, mib=256 if device.type == "cuda" else 4)
    peak = peak_bandwidth_gbs(device)
    peak_text = f"{peak:.0f} GB/s" if peak else "unknown"
    print(f"  copy bandwidth {copy_gbs:.0f} GB/s (copy_, read + write); theoretical peak {peak_text}")
    print(f"  {'shape':<19} {'norm':<30} {'ms':>7} {'GB/s':>7} {'% copy':>7} {'% peak':>7}")
    for shape in shapes:
        x = torch.randn(shape, device=device, requires_grad=True)
        dy = torch.randn(shape, device=device)
        traffic = 5 * x.numel() * x.element_size()
        for name, (layer, condition) in norms.lamina_layers(shape[0]).items():
            sample = torch.randn(shape[0], *([2] * (len(shape) - 2)), shape[-1])
            layer(sample if condition is None else [sample, condition])  # build on the CPU
            layer.to(device).train()
            if condition is None:
                forward = layer
            else:
                on_device = condition.to(device)
                forward = (lambda t, layer=layer, c=on_device: layer([t, c]))
            ms = device_ms(norms.step(forward, x, dy), repeats, device)
            achieved = traffic / ms / 1e6
            of_peak = f"{100 * achieved / peak:6.0f}%" if peak else "      -"
            print(f"  {str(shape):<19} {name:<30} {ms:7.3f} {achieved:7.0f} "
                  f"{100 * achieved / copy_gbs:6.0f}% {of_peak}")


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy, for the results file."""

    def __init__(self, terminal):
        self.terminal, self.kept = terminal, io.StringIO()

    def write(self, text):
        self.kept.write(text)
        return self.terminal.write(text)

    def flush(self):
        self.terminal.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer repeats")
    parser.add_argument("--smoke", action="store_true",
                        help="on the CPU, 2 steps per model and tiny norms: checks that the script runs")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend of the compiled rows (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds per worker (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="default: %(default)s")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("gpu_check: no CUDA device visible to torch; nothing to check here (exit 0).")
        return 0
    device = torch.device("cpu") if args.smoke else torch.device("cuda", 0)
    card = ("cpu" if args.smoke
            else torch.cuda.get_device_name(device).removeprefix("NVIDIA ").replace(" ", "-"))
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        failures = run_checks(device, "smoke" if args.smoke else "quick" if args.quick else "full", args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_check-{card}-{dt.date.today().strftime('%Y%m%d')}.txt"
    path.write_text(tee.kept.getvalue())
    print(f"wrote {path}", file=sys.stderr)
    return 1 if failures else 0


def run_checks(device, mode, args) -> list[str]:
    on_gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if on_gpu else "the CPU (smoke run)"
    print(f"gpu_check on {name}, torch {torch.__version__}, lamina {lamina.__version__}, "
          f"{dt.datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.2f}")
    failures = []
    # Parity compares arithmetic, not speed: TF32 would round matmuls and convolutions to 10 bits.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    print("\n1. Parity, CPU vs GPU" + ("" if on_gpu else " (CPU vs CPU here: the code runs)"))
    failures += check_parity(device)
    if on_gpu:
        print("\n2. Mixed precision and export on the GPU")
        failures += check_precision_and_export(device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # speed as users run it
    print("\n3. Speed: train and predict, one process per framework (TF32 allowed)")
    results = speed(device, mode, args.compile_backend, args.timeout)
    print("\n4. Normalization bandwidth, forward + backward")
    norm_bandwidth(device, repeats=2 if mode == "smoke" else 5 if mode == "quick" else 20,
                   shapes=GPU_NORM_SHAPES if on_gpu else SMOKE_NORM_SHAPES)
    print("\nall checks passed" if not failures else f"\nFAILED: {failures}")
    jit = "lamina jit_compile=True"
    print(ratio_line("predict lamina / best torch loop", results, "lamina", predict_rate))
    print(ratio_line(f"predict {jit} / best torch loop", results, LAMINA_SWITCH, predict_rate))
    print(ratio_line(f"fit {jit} / best torch loop", results, LAMINA_SWITCH, fit_rate))
    print(ratio_line("fit lamina / best torch loop", results, "lamina", fit_rate))
    return failures


if __name__ == "__main__":
    sys.exit(main())
