"""Dropout's mask as a compiled CPU loop: a counter-based hash instead of a stored random mask.

torch draws a dropout mask with one Mersenne-Twister number per element (bernoulli_), which on a
small MLP costs more than its matrix products. Here element i of a call is kept when
hash(seed, i) >= rate * 2**32, with one 64-bit seed per call drawn from torch's generator (the
layer's own when seeded): masks follow `torch.manual_seed` / `lamina.utils.set_random_seed`. The
loop writes the scaled mask (1 / (1 - rate) or 0) and the output is the input times it, so
autograd's own multiply node keeps the mask for the backward pass, as torch's dropout does (a
Python autograd Function regenerating it would cost more per call than the whole mask). The hash
is two rounds of a 32-bit integer mixer (Wellons' lowbias32) over the element index and the seed;
its 32-bit output quantizes the keep probability to 2**-32.

float32, contiguous, CPU only; everything else (and a machine without a C compiler) runs
`torch.nn.functional.dropout`.
"""

from __future__ import annotations

import functools

import torch

from lamina import _native

_SOURCE = r"""
#include <stdint.h>
#include <omp.h>
""" + _native.VARIANTS + r"""

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}

/* mask[i] = scale where hash(seed, start + i) >= threshold, else 0. */
VARIANTS static void mask_block(float *restrict mask, long start, long n, uint64_t seed, uint32_t threshold,
                                float scale) {
    uint32_t lo = (uint32_t)seed, hi = (uint32_t)(seed >> 32);
    for (long i = 0; i < n; i++) {
        uint64_t index = (uint64_t)(start + i);
        uint32_t h = mix32((uint32_t)index ^ lo);
        h = mix32(h + (uint32_t)(index >> 32) * 0x9E3779B9U + hi);
        mask[i] = h >= threshold ? scale : 0.0f;
    }
}

void lamina_dropout_mask(float *mask, long n, uint64_t seed, uint32_t threshold, float scale, int threads) {
    const long chunk = 16384;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long start = 0; start < n; start += chunk)
        mask_block(mask + start, start, n - start < chunk ? n - start : chunk, seed, threshold, scale);
}
"""

_SIGNATURES = {
    "lamina_dropout_mask": [_native.POINTER, _native.LONG, _native.UINT64, _native.UINT32, _native.FLOAT,
                            _native.INT],
}
_PARALLEL_MIN_NUMEL = 1 << 16


@functools.cache
def library():
    return _native.load("dropout", _SOURCE, _SIGNATURES, "Dropout draws its masks with torch's bernoulli_")


def usable(x: torch.Tensor) -> bool:
    """Contiguous float32 on the CPU, eagerly (graph capture records torch's dropout instead)."""
    return (_native.eager() and _native.float32_cpu(x) and x.is_contiguous()
            and library() is not None)


def threshold(rate: float) -> int:
    """The 32-bit hash values below which an element is dropped."""
    return min(round(rate * 2**32), 2**32 - 1)


def mask(like: torch.Tensor, seed: int, rate: float) -> torch.Tensor:
    """The scaled keep mask (1 / (1 - rate) or 0 per element) of the call with this seed."""
    out = torch.empty_like(like)
    n = out.numel()
    library().lamina_dropout_mask(_native.pointer(out), n, seed, threshold(rate), 1.0 / (1.0 - rate),
                                  torch.get_num_threads() if n >= _PARALLEL_MIN_NUMEL else 1)
    return out


def draw_mask(like: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
    """The scaled keep mask of one dropout call, its seed drawn from `generator` (torch's global
    one when None)."""
    return mask(like, int(torch.randint(0, 2**63 - 1, (), generator=generator)), rate)


def dropout(x: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
    """Inverted dropout of a contiguous float32 CPU tensor (see `usable`) in training mode: the
    input times the scaled mask, so autograd's own multiply node carries the backward pass."""
    return x * draw_mask(x, rate, generator)
