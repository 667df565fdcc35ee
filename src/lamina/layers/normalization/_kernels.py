"""Compiled loops for the statistics core: float32 tensors on CPU, built once with the system's C
compiler and loaded with ctypes.

Eager torch needs a separate pass over memory (and often a temporary tensor) for each of mean,
centring, squares, sums of products and the final combination; these loops fuse them, so a
norm's forward+backward reads and writes the tensor about eight times instead of twenty. They
cover the norms whose statistics are per (group of rows, channel) — Batch, Instance, Group,
Switchable and Conditional Batch normalization — on the channels_last (A, L, T) view.

Everything here is optional: without a C compiler, with `LAMINA_NATIVE_KERNELS=0`, or for other
dtypes and devices, the core runs the same mathematics with eager torch ops. The library is
cached in `$LAMINA_CACHE_DIR` (default `~/.cache/lamina`), keyed by a hash of source and flags.
Compiled with per-CPU variants (AVX-512, AVX2, generic) chosen at load time, never
`-march=native`, so a cache shared between machines stays valid.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCE = r"""
/* Fused CPU loops for lamina's normalization statistics core (float32).

   Every function sees its input as (A, L, T): A independent groups, each of L rows of T
   contiguous values, consecutive groups `stride` values apart. Statistics are per (group,
   column): a BatchNorm is one group of all rows, an InstanceNorm one group per sample.
   Reductions run over L in blocks small enough to stay in cache, so the two-pass variance reads
   memory once; blocks are merged in double precision (Chan et al.'s pairwise update).
   Tables (mean, scale, ...) hold one row of T values per group. */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VARIANTS
#endif

/* Floats per block: 32 KiB x 4 = 128 KiB, comfortably inside a core's L2 cache. */
#define BLOCK_FLOATS 32768

static long block_rows(long T) {
    long rows = BLOCK_FLOATS / T;
    return rows < 1 ? 1 : rows;
}

/* mean and sum of squared deviations (m2) over L, per (group, column). acc (2T doubles) and
   block (2T floats) are workspace. */
VARIANTS void lamina_moments(const float *restrict x, long A, long L, long T, long stride,
                             float *restrict mean, float *restrict m2, double *restrict acc,
                             float *restrict block) {
    double *acc_mean = acc, *acc_m2 = acc + T;
    float *block_mean = block, *block_m2 = block + T;
    long rows = block_rows(T);
    for (long a = 0; a < A; a++) {
        const float *xa = x + a * stride;
        for (long t = 0; t < T; t++) acc_mean[t] = acc_m2[t] = 0.0;
        long count = 0;
        for (long l0 = 0; l0 < L; l0 += rows) {
            long n = L - l0 < rows ? L - l0 : rows;
            const float *xb = xa + l0 * T;
            for (long t = 0; t < T; t++) block_mean[t] = block_m2[t] = 0.0f;
            for (long l = 0; l < n; l++)
                for (long t = 0; t < T; t++) block_mean[t] += xb[l * T + t];
            for (long t = 0; t < T; t++) block_mean[t] /= (float)n;
            for (long l = 0; l < n; l++)
                for (long t = 0; t < T; t++) {
                    float d = xb[l * T + t] - block_mean[t];
                    block_m2[t] += d * d;
                }
            long total = count + n;
            for (long t = 0; t < T; t++) {
                double delta = (double)block_mean[t] - acc_mean[t];
                acc_mean[t] += delta * n / total;
                acc_m2[t] += block_m2[t] + delta * delta * ((double)count * n / total);
            }
            count = total;
        }
        for (long t = 0; t < T; t++) {
            mean[a * T + t] = (float)acc_mean[t];
            m2[a * T + t] = (float)acc_m2[t];
        }
    }
}

/* y = (x - mean) * scale + shift. */
VARIANTS void lamina_affine(const float *restrict x, float *restrict y, long A, long L, long T, long stride,
                            const float *restrict mean, const float *restrict scale,
                            const float *restrict shift) {
    for (long a = 0; a < A; a++) {
        const float *m = mean + a * T, *s = scale + a * T, *b = shift + a * T;
        for (long l = 0; l < L; l++) {
            const float *xr = x + a * stride + l * T;
            float *yr = y + a * stride + l * T;
            for (long t = 0; t < T; t++) yr[t] = (xr[t] - m[t]) * s[t] + b[t];
        }
    }
}

/* sum of dy and of dy * (x - mean) over L, per (group, column); acc and block are workspace. */
VARIANTS void lamina_sums(const float *restrict dy, const float *restrict x, long A, long L, long T,
                          long stride, const float *restrict mean, float *restrict sum_dy,
                          float *restrict sum_dy_centered, double *restrict acc, float *restrict block) {
    float *block_dy = block, *block_dyc = block + T;
    long rows = block_rows(T);
    for (long a = 0; a < A; a++) {
        const float *m = mean + a * T;
        for (long t = 0; t < 2 * T; t++) acc[t] = 0.0;
        for (long l0 = 0; l0 < L; l0 += rows) {
            long n = L - l0 < rows ? L - l0 : rows;
            const float *xb = x + a * stride + l0 * T, *gb = dy + a * stride + l0 * T;
            for (long t = 0; t < T; t++) block_dy[t] = block_dyc[t] = 0.0f;
            for (long l = 0; l < n; l++)
                for (long t = 0; t < T; t++) {
                    float g = gb[l * T + t];
                    block_dy[t] += g;
                    block_dyc[t] += g * (xb[l * T + t] - m[t]);
                }
            for (long t = 0; t < T; t++) {
                acc[t] += block_dy[t];
                acc[T + t] += block_dyc[t];
            }
        }
        for (long t = 0; t < T; t++) {
            sum_dy[a * T + t] = (float)acc[t];
            sum_dy_centered[a * T + t] = (float)acc[T + t];
        }
    }
}

/* dx = dy * scale + (x - mean) * slope + offset. */
VARIANTS void lamina_combine(const float *restrict dy, const float *restrict x, float *restrict dx, long A,
                             long L, long T, long stride, const float *restrict mean,
                             const float *restrict scale, const float *restrict slope,
                             const float *restrict offset) {
    for (long a = 0; a < A; a++) {
        const float *m = mean + a * T, *s = scale + a * T, *k = slope + a * T, *c = offset + a * T;
        for (long l = 0; l < L; l++) {
            const float *xr = x + a * stride + l * T, *gr = dy + a * stride + l * T;
            float *dr = dx + a * stride + l * T;
            for (long t = 0; t < T; t++) dr[t] = gr[t] * s[t] + (xr[t] - m[t]) * k[t] + c[t];
        }
    }
}
"""

_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c99"]
# Below this many elements, splitting work across threads costs more than it saves.
_PARALLEL_MIN_NUMEL = 1 << 16

_f = ctypes.c_void_p
_n = ctypes.c_long
_SIGNATURES = {
    "lamina_moments": (None, [_f, _n, _n, _n, _n, _f, _f, _f, _f]),
    "lamina_affine": (None, [_f, _f, _n, _n, _n, _n, _f, _f, _f]),
    "lamina_sums": (None, [_f, _f, _n, _n, _n, _n, _f, _f, _f, _f, _f]),
    "lamina_combine": (None, [_f, _f, _f, _n, _n, _n, _n, _f, _f, _f, _f]),
}


def _compile(target: Path) -> None:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise OSError("no C compiler found (set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "norm_kernels.c"
        source.write_text(_SOURCE)
        built = Path(tmp) / target.name
        subprocess.run([compiler, *_FLAGS, str(source), "-o", str(built)], check=True, capture_output=True,
                       timeout=120)
        os.replace(built, target)  # atomic: concurrent processes never load a half-written file


@functools.cache
def library():
    """The loaded kernels, or None where they cannot be used (the core then stays eager)."""
    if os.environ.get("LAMINA_NATIVE_KERNELS", "1") == "0" or not sys.platform.startswith("linux"):
        return None
    key = hashlib.sha256((_SOURCE + " ".join(_FLAGS)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("LAMINA_CACHE_DIR", Path.home() / ".cache" / "lamina"))
    target = cache / "kernels" / f"norm_{key}.so"
    try:
        if not target.exists():
            _compile(target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"lamina: normalization layers run on eager torch ops (compiling their CPU kernels "
                      f"failed: {error}). Set LAMINA_NATIVE_KERNELS=0 to silence this.", stacklevel=2)
        return None
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def usable(*tensors) -> bool:
    """Whether these tensors can go through the kernels: contiguous float32 on CPU."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in tensors) \
        and library() is not None


_pool_lock = threading.Lock()
_pool: list = [None, 0]


def _parallel(calls) -> None:
    """Run zero-argument callables on torch's number of threads (ctypes releases the GIL)."""
    if len(calls) > 1:
        with _pool_lock:
            if _pool[1] < len(calls) - 1:
                _pool[0] = ThreadPoolExecutor(len(calls) - 1, thread_name_prefix="lamina-norm")
                _pool[1] = len(calls) - 1
            pool = _pool[0]
        futures = [pool.submit(call) for call in calls[1:]]
        calls[0]()
        for future in futures:
            future.result()
    elif calls:
        calls[0]()


def _parts(A: int, L: int, T: int):
    """Split (A, L, T) work into (a0, a1, l0, l1) pieces, along A when there are enough groups."""
    count = min(torch.get_num_threads(), max(A, L)) if A * L * T >= _PARALLEL_MIN_NUMEL else 1
    if count <= 1:
        return [(0, A, 0, L)]
    if A >= count:
        bounds = [A * i // count for i in range(count + 1)]
        return [(bounds[i], bounds[i + 1], 0, L) for i in range(count)]
    bounds = [L * i // count for i in range(count + 1)]
    return [(0, A, bounds[i], bounds[i + 1]) for i in range(count)]


def _ptr(t: torch.Tensor, offset: int = 0):
    """The address of float32 element `offset` of t."""
    return ctypes.c_void_p(t.data_ptr() + 4 * offset)


def _workspace(T: int):
    """Block accumulators of one kernel call: 2T doubles and 2T floats."""
    return torch.empty(2 * T, dtype=torch.float64), torch.empty(2 * T)


def moments(x: torch.Tensor, A: int, L: int, T: int):
    """Per (group, column) mean and biased variance over L of x seen as (A, L, T)."""
    lib, parts = library(), _parts(A, L, T)
    outputs = [(torch.empty(a1 - a0, T), torch.empty(a1 - a0, T)) for a0, a1, _, _ in parts]

    def run(part, out):
        a0, a1, l0, l1 = part
        acc, block = _workspace(T)
        lib.lamina_moments(_ptr(x, (a0 * L + l0) * T), a1 - a0, l1 - l0, T, L * T, _ptr(out[0]), _ptr(out[1]),
                           ctypes.c_void_p(acc.data_ptr()), _ptr(block))

    _parallel([functools.partial(run, p, o) for p, o in zip(parts, outputs)])
    if parts[0][3] == L:  # split along groups: the pieces stack
        mean, m2 = (torch.cat(t) for t in zip(*outputs))
        return mean, m2 / L
    # Split along rows: merge the pieces' moments (Chan et al.).
    counts = torch.tensor([float(l1 - l0) for *_, l0, l1 in parts]).reshape(-1, 1, 1)
    means, m2s = (torch.stack(t) for t in zip(*outputs))
    mean = (means * counts).sum(0) / L
    return mean, ((m2s + counts * (means - mean) ** 2).sum(0)) / L


def affine(x: torch.Tensor, A: int, L: int, T: int, mean, scale, shift) -> torch.Tensor:
    """(x - mean) * scale + shift with (A, T) tables, into a new tensor."""
    lib, y = library(), torch.empty_like(x)

    def run(part):
        a0, a1, l0, l1 = part
        offset = (a0 * L + l0) * T
        lib.lamina_affine(_ptr(x, offset), _ptr(y, offset), a1 - a0, l1 - l0, T, L * T,
                          _ptr(mean, a0 * T), _ptr(scale, a0 * T), _ptr(shift, a0 * T))

    _parallel([functools.partial(run, p) for p in _parts(A, L, T)])
    return y


def sums(dy: torch.Tensor, x: torch.Tensor, A: int, L: int, T: int, mean):
    """Per (group, column) sums over L of dy and of dy * (x - mean)."""
    lib, parts = library(), _parts(A, L, T)
    outputs = [(torch.empty(a1 - a0, T), torch.empty(a1 - a0, T)) for a0, a1, _, _ in parts]

    def run(part, out):
        a0, a1, l0, l1 = part
        offset = (a0 * L + l0) * T
        acc, block = _workspace(T)
        lib.lamina_sums(_ptr(dy, offset), _ptr(x, offset), a1 - a0, l1 - l0, T, L * T, _ptr(mean, a0 * T),
                        _ptr(out[0]), _ptr(out[1]), ctypes.c_void_p(acc.data_ptr()), _ptr(block))

    _parallel([functools.partial(run, p, o) for p, o in zip(parts, outputs)])
    if parts[0][3] == L:
        return tuple(torch.cat(t) for t in zip(*outputs))
    return tuple(torch.stack(t).sum(0) for t in zip(*outputs))


def combine(dy: torch.Tensor, x: torch.Tensor, A: int, L: int, T: int, mean, scale, slope, offset):
    """dy * scale + (x - mean) * slope + offset with (A, T) tables, into a new tensor."""
    lib, dx = library(), torch.empty_like(x)

    def run(part):
        a0, a1, l0, l1 = part
        start = (a0 * L + l0) * T
        lib.lamina_combine(_ptr(dy, start), _ptr(x, start), _ptr(dx, start), a1 - a0, l1 - l0, T, L * T,
                           _ptr(mean, a0 * T), _ptr(scale, a0 * T), _ptr(slope, a0 * T),
                           _ptr(offset, a0 * T))

    _parallel([functools.partial(run, p) for p in _parts(A, L, T)])
    return dx
