"""glibc's malloc told to keep freed memory for reuse, so tensors do not page-fault on every step.

A training step allocates and frees the same activation buffers every time. glibc serves blocks
above its mmap threshold (128 KiB at start, raised as such blocks are freed) with fresh `mmap`s,
and trims the top of its heap back to the OS past its trim threshold; either way the next step's
buffers are new pages, and the kernel faults and zeroes each 4 KiB of them on first touch. On
FCN's step (activations of 16 x 150 x 256 floats, 2.4 MB) the element-wise ops then ran 4-5x
slower than on reused memory. With the mmap threshold at glibc's maximum (32 MiB) and the trim
threshold at 512 MiB, freed blocks stay in the heap and are reused: minor page faults per FCN
training step 854-1632 -> 0.4, FCN `fit` 1130-1183 -> 1306-1329 samples/s in a fresh short run
and +3-6% in the benchmark's longer one (glibc's own thresholds adapt as a process runs, so how
much the defaults cost depends on its allocation history).

The cost is that up to 512 MiB of freed small-and-medium blocks stay mapped to the process
instead of going back to the OS; blocks over 32 MiB are still mapped and unmapped one by one.
mallopt's settings are the whole process's, and glibc has no call that puts its adaptive
thresholds back, so lamina never applies them on its own: `lamina.config.tune_malloc()` does, or
`LAMINA_MALLOC_TUNING=1` in the environment when lamina is imported. The user's own
`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` win over both. Other allocators (jemalloc,
tcmalloc preloaded) ignore glibc's mallopt.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 512 << 20


def tune_malloc() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse, for the rest of the process (it cannot
    be undone): steps then reuse their activation buffers instead of page-faulting fresh ones.
    Applies to everything in the process, not only to lamina. See `lamina/_memory.py`.

    Returns:
        True when glibc accepted both thresholds; False off glibc, or where the user's own
        MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ are set (they win).
    """
    if (not sys.platform.startswith("linux")
            or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        _ = libc.gnu_get_libc_version  # glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


# At import, only where the environment opts in.
TUNED = os.environ.get("LAMINA_MALLOC_TUNING", "0") == "1" and tune_malloc()
