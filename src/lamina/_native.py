"""Small C kernels for CPU loops that torch's eager ops cannot fuse, built once with the system's C
compiler and loaded with ctypes: the one place that loads them. They are called only inside the
operators of `lamina.kernels`, through `checked` pointers.

Everything built here is optional: without a C compiler, off Linux, or with
`LAMINA_NATIVE_KERNELS=0`, the operators run the same mathematics with torch's ops. Libraries
are cached in `$LAMINA_CACHE_DIR` (default `~/.cache/lamina`), keyed by a hash of source and
flags. Sources mark their hot functions with per-CPU variants (AVX-512, AVX2, generic) chosen at
load time, never `-march=native`, so a cache shared between machines stays valid. They link
against libgomp, which resolves to the copy torch has already loaded: the kernels share torch's
OpenMP threads and follow `torch.set_num_threads`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

# Per-CPU variants of a function, for sources to put before their hot loops.
VARIANTS = r"""
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VARIANTS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VARIANTS
#endif
"""

FLAGS = ["-O3", "-std=c99", "-fopenmp", "-shared", "-fPIC"]

# ctypes argument types, short names for signature tables.
POINTER, LONG, INT, UINT32, UINT64, FLOAT = (ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_uint32,
                                             ctypes.c_uint64, ctypes.c_float)


def enabled() -> bool:
    return os.environ.get("LAMINA_NATIVE_KERNELS", "1") != "0" and sys.platform.startswith("linux")


def _compile(source: str, target: Path) -> None:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise OSError("no C compiler found (set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        path = Path(tmp) / f"{target.stem}.c"
        path.write_text(source)
        built = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, str(path), "-o", str(built)], check=True, capture_output=True,
                       timeout=120)
        os.replace(built, target)  # atomic: concurrent processes never load a half-written file


def load(name: str, source: str, signatures: dict, fallback: str):
    """The compiled library `name` of `source` with its functions typed by `signatures` (name ->
    argument types; all return void), or None with a warning saying what runs instead."""
    if not enabled():
        return None
    key = hashlib.sha256((source + " ".join(FLAGS)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("LAMINA_CACHE_DIR", Path.home() / ".cache" / "lamina"))
    target = cache / "kernels" / f"{name}_{key}.so"
    try:
        if not target.exists():
            _compile(source, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"lamina: {fallback} (compiling their CPU kernels failed: {error}). Set "
                      "LAMINA_NATIVE_KERNELS=0 to silence this.", stacklevel=3)
        return None
    for function, argtypes in signatures.items():
        fn = getattr(lib, function)
        fn.restype, fn.argtypes = None, argtypes
    return lib


def eager(lowered_on: str | None = None) -> bool:
    """Whether a route that calls the loops directly, outside a registered operator, may run: no
    graph capture, no functorch transform and, for ops autocast lowers on tensors of device type
    `lowered_on` ("cpu", "cuda"), no autocast on that device. Only the
    model-level fusions (`models/_dense_chain.py`, `models/_dense_step.py`) and the one-sample
    oneDNN call inside `lamina::convolution` (a composite operator, whose body graph capture
    sees) need it; the other operators in `lamina.kernels` do not."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not torch._C._are_functorch_transforms_active()
            and not (lowered_on is not None and torch.is_autocast_enabled(lowered_on)))


def float32_cpu(*tensors) -> bool:
    """Whether every tensor given (None: an absent one, skipped) is float32 on the CPU."""
    return all(t is None or (t.dtype == torch.float32 and t.is_cpu) for t in tensors)


def checked(where: str, t: torch.Tensor | None, shape) -> int | None:
    """t's data as a pointer argument for a loop that reads it as contiguous float32 of `shape`
    (None passes NULL). Anything else is refused here, at the boundary, since C would read it as
    garbage."""
    if t is None:
        return None
    if (t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous()
            or tuple(t.shape) != tuple(shape)):
        raise ValueError(
            f"lamina: {where} takes contiguous float32 CPU tensors; received {t.dtype} of shape "
            f"{tuple(t.shape)} on {t.device} (contiguous: {t.is_contiguous()}) where {tuple(shape)} was "
            "expected. This is a bug in lamina: please report it with the call that raised it."
        )
    return t.data_ptr()
