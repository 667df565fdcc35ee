"""Forward + backward of every lamina norm against torch's own ops, on channels_last inputs.

    python bench/norms.py [--repeats 10] [--threads N]

For each shape and norm: the median time of `y = norm(x); y.backward(dy)` (after warm-ups), its
ratio to the torch reference (below 1: lamina is faster), and the effective bandwidth of the
minimum traffic, 5 passes over the tensor (forward: read x, write y; backward: read x and dy,
write dx), printed next to this machine's measured copy bandwidth. The torch references are what
a channels_last user has to write: torch's ops with the transposes to channels_first, and, for
SwitchableNormalization, a direct port of the published algorithm. Not run by the test suite.

Page faults: with glibc's default settings, freeing a few large tensors can hand their memory
back to the OS, and the next step's outputs then fault in every 4 KiB page (zeroed by the
kernel) before any arithmetic: this can cost more than the norm itself. lamina can tell glibc to
keep freed memory (an opt-in, lamina/_memory.py): `LAMINA_MALLOC_TUNING=1 python bench/norms.py`
runs with it, and since both sides run in this one process, torch's references get the same
allocator; without it, glibc's defaults. The "faults" columns count page faults per step.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from lamina import _memory, layers

SHAPES = [(32, 1024, 64), (16, 32, 32, 64)]
GROUPS = 8


def median_ms(fn, repeats: int, warmups: int = 3) -> float:
    return measure(fn, repeats, warmups)[0]


def measure(fn, repeats: int, warmups: int = 3):
    """(median milliseconds, minor page faults per call)."""
    for _ in range(warmups):
        fn()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return statistics.median(times) * 1e3, faults / repeats


def copy_bandwidth_gbs(repeats: int) -> float:
    """Bytes read plus bytes written per second by a 256 MiB tensor copy."""
    src = torch.ones(64 * 2**20)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / median_ms(lambda: dst.copy_(src), repeats) / 1e6


def published_switch_norm(x, weight, bias, mean_weight, var_weight, running_mean, running_var, eps=1e-3,
                          momentum=0.99):
    """The official SwitchNorm forward (training mode), ported as written: channels first."""
    n, c = x.shape[:2]
    x = x.reshape(n, c, -1)
    mean_in = x.mean(-1, keepdim=True)
    var_in = x.var(-1, keepdim=True)
    mean_ln = mean_in.mean(1, keepdim=True)
    temp = var_in + mean_in**2
    var_ln = temp.mean(1, keepdim=True) - mean_ln**2
    mean_bn = mean_in.mean(0, keepdim=True)
    var_bn = temp.mean(0, keepdim=True) - mean_bn**2
    running_mean.mul_(momentum).add_((1 - momentum) * mean_bn.detach().reshape(-1))
    running_var.mul_(momentum).add_((1 - momentum) * var_bn.detach().reshape(-1))
    mw, vw = torch.softmax(mean_weight, 0), torch.softmax(var_weight, 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    x = (x - mean) / (var + eps).sqrt()
    return x.reshape(n, c, -1) * weight.reshape(1, c, 1) + bias.reshape(1, c, 1)


def torch_references(batch: int, channels: int):
    """name -> (torch reference forward for a channels_last x, what the reference is)."""
    w = torch.ones(channels, requires_grad=True)
    b = torch.zeros(channels, requires_grad=True)
    running = torch.zeros(channels), torch.ones(channels)
    mix = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    table = torch.ones(10, channels, requires_grad=True), torch.zeros(10, channels, requires_grad=True)
    ids = torch.arange(batch) % 10

    def first(x):
        return x.movedim(-1, 1)

    def last(y):
        return y.movedim(1, -1)

    def conditional(x):
        y = F.batch_norm(x.reshape(-1, channels), *running, None, None, True, 0.01, 1e-3).reshape(x.shape)
        per_sample = (x.shape[0],) + (1,) * (x.ndim - 2) + (channels,)
        return y * table[0][ids].reshape(per_sample) + table[1][ids].reshape(per_sample)

    return {
        "BatchNormalization": (lambda x: last(F.batch_norm(first(x), *running, w, b, True, 0.01, 1e-3)),
                               "F.batch_norm on movedim"),
        "LayerNormalization": (lambda x: F.layer_norm(x, (channels,), w, b, 1e-3), "F.layer_norm"),
        "GroupNormalization": (lambda x: last(F.group_norm(first(x), GROUPS, w, b, 1e-3)),
                               f"F.group_norm({GROUPS}) on movedim"),
        "InstanceNormalization": (lambda x: last(F.instance_norm(first(x), weight=w, bias=b, eps=1e-3)),
                                  "F.instance_norm on movedim"),
        "SwitchableNormalization": (lambda x: last(published_switch_norm(first(x), w, b, *mix, *running)
                                                   .reshape(first(x).shape)),
                                    "published SN, direct port"),
        "ConditionalBatchNormalization": (conditional, "F.batch_norm(2D) + gather"),
    }


def lamina_layers(batch: int):
    ids = torch.arange(batch) % 10
    return {
        "BatchNormalization": (layers.BatchNormalization(), None),
        "LayerNormalization": (layers.LayerNormalization(), None),
        "GroupNormalization": (layers.GroupNormalization(GROUPS), None),
        "InstanceNormalization": (layers.InstanceNormalization(), None),
        "SwitchableNormalization": (layers.SwitchableNormalization(), None),
        "ConditionalBatchNormalization": (layers.ConditionalBatchNormalization(num_classes=10), ids),
    }


def step(forward, x, dy):
    def run():
        x.grad = None
        forward(x).backward(dy)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    allocator = ("glibc keeping freed memory (LAMINA_MALLOC_TUNING=1)" if _memory.TUNED
                 else "the allocator's defaults")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, channels_last, "
          f"{allocator}\n")
    header = (f"{'shape':<17} {'norm':<30} {'lamina ms':>9} {'GB/s':>6} {'faults':>6} {'torch ms':>9} "
              f"{'GB/s':>6} {'faults':>6} {'ratio':>6}  torch reference")
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        times = {}
        x = torch.randn(shape, requires_grad=True)
        dy = torch.randn(shape)
        traffic = 5 * x.numel() * x.element_size()
        references = torch_references(shape[0], shape[-1])
        for name, (layer, condition) in lamina_layers(shape[0]).items():
            layer.train()
            forward = layer if condition is None else (lambda x, layer=layer, c=condition: layer([x, c]))
            reference, description = references[name]
            theirs, their_faults = measure(step(reference, x, dy), args.repeats)  # first: no advantage
            ours, our_faults = measure(step(forward, x, dy), args.repeats)
            times[name] = ours
            print(f"{str(shape):<17} {name:<30} {ours:9.2f} {traffic / ours / 1e6:6.1f} {our_faults:6.0f} "
                  f"{theirs:9.2f} {traffic / theirs / 1e6:6.1f} {their_faults:6.0f} {ours / theirs:6.2f}  "
                  f"{description}")
        ratio = times["SwitchableNormalization"] / times["BatchNormalization"]
        print(f"{'':<17} SwitchableNormalization / BatchNormalization (lamina): {ratio:.2f}x")
    # Last: its 256 MiB blocks would change what the allocator does for the norms after them.
    copy = copy_bandwidth_gbs(args.repeats)
    print(f"\ncopy bandwidth {copy:.1f} GB/s (256 MiB copy_, read + write); "
          "goal: every lamina norm >= 20 GB/s effective.")


if __name__ == "__main__":
    main()
