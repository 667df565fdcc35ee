"""What a machine with an NVIDIA GPU checks in a few minutes; without CUDA it says so and exits 0.

    python bench/gpu_check.py            # everything (about 3 minutes on an H100)
    python bench/gpu_check.py --quick    # smaller data and fewer repeats

1. Parity: a handful of layers (dense, convolutions, recurrent, every norm, pooling) built once on
   the CPU, where the test suite holds them to Keras, and copied to the GPU; outputs, input and
   weight gradients and updated moving statistics must agree (TF32 off, 1e-4).
2. Mixed precision and export on the GPU: fit under mixed_bfloat16 and mixed_float16 (loss
   scaling) with finite losses and float32 weights; a CUDA model exported to ONNX predicts as
   `predict` does in onnxruntime.
3. The speed bench's three models (bench/workloads.py: FCN, LSTM(64), MLP), trained with lamina's
   `fit` on the GPU next to a plain torch loop on the same weights (bench/frameworks/torch_loop.py):
   median seconds per epoch after a warm-up epoch.
4. The normalization layers of bench/norms.py, forward + backward on GPU-sized inputs: achieved
   bandwidth (5 passes over the tensor, as bench/norms.py counts) against the GPU's measured copy
   bandwidth and its theoretical peak.

Exit status: 0 when every parity and precision check passed (or there is no GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
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
from torch import nn  # noqa: E402

import lamina  # noqa: E402
from bench import norms, workloads  # noqa: E402
from bench.frameworks import torch_loop  # noqa: E402
from bench.frameworks.keras_api import FitRunner  # noqa: E402
from lamina import layers, mixed_precision  # noqa: E402

TOLERANCE = 1e-4
GPU_NORM_SHAPES = [(256, 1024, 128), (64, 64, 64, 128)]  # 128 MiB of float32 each


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


def torch_epoch_seconds(workload, weights, x, y, epochs, device):
    """The plain torch loop of bench/frameworks/torch_loop.py, with the model and each batch on
    the GPU (the batches are moved per step, as lamina's fit moves them)."""
    torch.manual_seed(workloads.SEED)
    net = torch_loop.build_net(workload)
    torch_loop.load_keras_weights(net, weights)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=workloads.LEARNING_RATE, eps=workloads.ADAM_EPSILON)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y))
        running = torch.zeros((), device=device)
        for i in range(0, len(y), workload.batch_size):
            batch = order[i:i + workload.batch_size]
            optimizer.zero_grad(set_to_none=True)
            xb, yb = x[batch].to(device, non_blocking=True), y[batch].to(device, non_blocking=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.detach()
        float(running)
        seconds.append(time.perf_counter() - start)
    return seconds


def speed(device, samples, epochs) -> None:
    print(f"  {'model':<48} {'lamina fit s/epoch':>18} {'torch loop s/epoch':>18} {'ratio':>6}")
    for workload in workloads.WORKLOADS.values():
        x, y = workloads.dataset(workload, samples)
        weights = workloads.initial_weights(workload)
        runner = FitRunner(lamina, workload, weights)
        ours = statistics.median(runner.train(x, y, workload.batch_size, epochs)[1:])
        theirs = statistics.median(torch_epoch_seconds(workload, weights, x, y, epochs, device)[1:])
        print(f"  {workload.title:<48} {ours:18.3f} {theirs:18.3f} {ours / theirs:6.2f}")


def cuda_ms(fn, repeats) -> float:
    """Median milliseconds of `fn` on the GPU, after warm-ups."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_bandwidth_gbs(device) -> float | None:
    """The memory's theoretical bandwidth from its clock and bus width (double data rate)."""
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "memory_clock_rate", None)
    bus_bits = getattr(props, "memory_bus_width", None)
    if not clock_khz or not bus_bits:
        return None
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9


def copy_bandwidth_gbs(device, repeats) -> float:
    """Bytes read plus bytes written per second by a 256 MiB tensor copy on the GPU."""
    src = torch.ones(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / cuda_ms(lambda: dst.copy_(src), repeats) / 1e6


def norm_bandwidth(device, repeats) -> None:
    copy_gbs = copy_bandwidth_gbs(device, repeats)
    peak = peak_bandwidth_gbs(device)
    peak_text = f"{peak:.0f} GB/s" if peak else "unknown"
    print(f"  copy bandwidth {copy_gbs:.0f} GB/s (256 MiB copy_, read + write); theoretical peak {peak_text}")
    print(f"  {'shape':<19} {'norm':<30} {'ms':>7} {'GB/s':>7} {'% copy':>7} {'% peak':>7}")
    for shape in GPU_NORM_SHAPES:
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
            ms = cuda_ms(norms.step(forward, x, dy), repeats)
            achieved = traffic / ms / 1e6
            of_peak = f"{100 * achieved / peak:6.0f}%" if peak else "      -"
            print(f"  {str(shape):<19} {name:<30} {ms:7.3f} {achieved:7.0f} "
                  f"{100 * achieved / copy_gbs:6.0f}% {of_peak}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer repeats")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch; nothing to check here (exit 0).")
        return 0
    device = torch.device("cuda", 0)
    # Parity compares arithmetic, not speed: TF32 would round matmuls and convolutions to 10 bits.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"gpu_check on {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
          f"lamina {lamina.__version__}")
    failures = []
    print("\n1. Parity, CPU vs GPU")
    failures += check_parity(device)
    print("\n2. Mixed precision and export on the GPU")
    failures += check_precision_and_export(device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # speed as users run it
    print("\n3. Speed: the bench's three models (TF32 allowed)")
    speed(device, samples=1024 if args.quick else 4096, epochs=2 if args.quick else 4)
    print("\n4. Normalization bandwidth, forward + backward")
    norm_bandwidth(device, repeats=5 if args.quick else 20)
    print("\nall checks passed" if not failures else f"\nFAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
