"""Dropout's operator: `lamina::dropout_mask`, the scaled keep mask of one dropout call.

torch draws a dropout mask with one Mersenne-Twister number per element (bernoulli_), which on a
small MLP costs more than its matrix products. For float32 contiguous CPU tensors the mask here
is a compiled counter-based hash instead: element i is kept when hash(seed, i) >= rate * 2**32,
with one 64-bit seed per call drawn from torch's generator (the layer's own when seeded), so
masks follow `torch.manual_seed` / `lamina.utils.set_random_seed`. The hash is two rounds of a
32-bit integer mixer (Wellons' lowbias32) over the element index and the seed; its 32-bit output
quantizes the keep probability to 2**-32. Elsewhere (other dtypes, devices, layouts) the mask is
torch's uniform draw from a generator seeded with the same seed. Either way the output is the
input times the mask, so autograd's own multiply node keeps the mask for the backward pass, as
torch's dropout does.
"""

from __future__ import annotations

import functools

import torch

from lamina import _native
from lamina.kernels._ops import on_loops, operator

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
    return _native.load("dropout", _SOURCE, _SIGNATURES, "Dropout draws its masks with torch's rand")


def threshold(rate: float) -> int:
    """The 32-bit hash values below which an element is dropped."""
    return min(round(rate * 2**32), 2**32 - 1)


def _on_mask_loop(like) -> bool:
    return on_loops(like) and library() is not None


def _mask_impl(like, seed, rate):
    if not _on_mask_loop(like):
        generator = torch.Generator(like.device).manual_seed(seed)
        keep = torch.rand(like.shape, generator=generator, device=like.device) >= rate
        return keep.to(like.dtype) / (1.0 - rate)
    out = torch.empty_like(like)
    n = out.numel()
    library().lamina_dropout_mask(_native.checked("lamina_dropout_mask", out, like.shape), n, seed,
                                  threshold(rate), 1.0 / (1.0 - rate),
                                  torch.get_num_threads() if n >= _PARALLEL_MIN_NUMEL else 1)
    return out


_MASK = operator("dropout_mask(Tensor like, int seed, float rate) -> Tensor", _mask_impl,
                 lambda like, seed, rate: torch.empty_like(like))


def mask(like: torch.Tensor, seed: int, rate: float) -> torch.Tensor:
    """The scaled keep mask (1 / (1 - rate) or 0 per element) of the call with this seed, shaped,
    typed and placed like `like`."""
    return _MASK(like.detach(), seed, float(rate))


def draw_mask(like: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
    """The scaled keep mask of one dropout call, its seed drawn from `generator` (torch's global
    one when None)."""
    device = like.device if generator is None else generator.device
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator, device=device))
    return mask(like, seed, rate)
