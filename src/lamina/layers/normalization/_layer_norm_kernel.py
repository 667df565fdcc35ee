"""LayerNormalization's forward over the last axis as a compiled loop (float32, CPU).

Each row (one sample's, one position's channels) is normalized by its own statistics: the loop
reads the row once into cache, takes its mean and its centred (two-pass) variance there with
16 independent partial sums (vector lanes), and writes y, saving the row's mean and
1 / sqrt(var + eps). torch's CPU forward takes 1.4-1.6x as long on channels_last activations
((16, 32, 32, 64): 0.28 -> 0.18 ms; (64, 128, 512): 0.55 -> 0.38 ms, 2 threads). The backward is
torch's own layer-norm backward, given those saved statistics: a hand-written one measured
1.3-1.5x slower than torch's (whose gamma/beta reduction is blocked over rows).

Rows are shared out over torch's OpenMP threads. Used by LayerNormalization over a single last
axis of a contiguous float32 CPU tensor of at least `MIN_NUMEL` values; everything else (and a
machine without a C compiler) takes torch's fused layer_norm.
"""

from __future__ import annotations

import functools

import torch

from lamina import _native
from lamina._native import FLOAT as _e
from lamina._native import INT as _i
from lamina._native import LONG as _n
from lamina._native import POINTER as _f

_SOURCE = r"""
#include <math.h>
#include <omp.h>
""" + _native.VARIANTS + r"""

/* Sums of a row kept in LANES independent partial sums (vector lanes: the compiler may not
   reorder one float sum), added up at the end. */
#define LANES 16

static inline float lanes_total(const float *acc) {
    float total = 0.0f;
    for (int j = 0; j < LANES; j++) total += acc[j];
    return total;
}

VARIANTS static void forward_rows(const float *restrict x, float *restrict y, float *restrict mean,
                                  float *restrict rstd, const float *restrict g, const float *restrict b,
                                  long first, long last, long C, float eps) {
    const long body = C - C % LANES;
    for (long r = first; r < last; r++) {
        const float *restrict xr = x + r * C;
        float *restrict yr = y + r * C;
        float acc[LANES] = {0.0f};
        for (long c0 = 0; c0 < body; c0 += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += xr[c0 + j];
        for (long c = body; c < C; c++) acc[c - body] += xr[c];
        const float m = lanes_total(acc) / (float)C;
        float sq[LANES] = {0.0f};
        for (long c0 = 0; c0 < body; c0 += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = xr[c0 + j] - m;
                sq[j] += d * d;
            }
        for (long c = body; c < C; c++) {
            float d = xr[c] - m;
            sq[c - body] += d * d;
        }
        const float rs = 1.0f / sqrtf(lanes_total(sq) / (float)C + eps);
        mean[r] = m;
        rstd[r] = rs;
        if (g && b)
            for (long c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs * g[c] + b[c];
        else if (g)
            for (long c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs * g[c];
        else if (b)
            for (long c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs + b[c];
        else
            for (long c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs;
    }
}

void lamina_layer_norm_forward(const float *x, float *y, float *mean, float *rstd, const float *g,
                               const float *b, long R, long C, float eps, int threads) {
#pragma omp parallel num_threads(threads)
    {
        int i = omp_get_thread_num(), n = omp_get_num_threads();
        forward_rows(x, y, mean, rstd, g, b, R * i / n, R * (i + 1) / n, C, eps);
    }
}
"""

_SIGNATURES = {
    "lamina_layer_norm_forward": [_f, _f, _f, _f, _f, _f, _n, _n, _e, _i],
}

# Below this many values torch's kernel is as fast (and one autograd Function call costs more).
MIN_NUMEL = 1 << 15


@functools.cache
def library():
    return _native.load("layer_norm", _SOURCE, _SIGNATURES,
                        "LayerNormalization runs torch's layer_norm")


def usable(x: torch.Tensor, gamma, beta) -> bool:
    """A contiguous float32 CPU input large enough to share out, float32 parameters, eagerly."""
    return (_native.eager() and x.numel() >= MIN_NUMEL and _native.float32_cpu(x, gamma, beta)
            and x.is_contiguous() and library() is not None)


def layer_norm(x, gamma, beta, epsilon):
    """Layer norm over the last axis of `x` (gamma, beta: (C,) or None), differentiable."""
    return _LayerNormRows.apply(x, gamma, beta, float(epsilon))


class _LayerNormRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, epsilon):
        C = x.shape[-1]
        R = x.numel() // C  # usable() admitted >= MIN_NUMEL values
        y = torch.empty_like(x)
        mean = torch.empty(R)
        rstd = torch.empty(R)
        library().lamina_layer_norm_forward(*_native.pointers(x, y, mean, rstd, gamma, beta), R, C,
                                            epsilon, torch.get_num_threads())
        ctx.save_for_backward(x, mean, rstd, gamma, beta)
        return y

    @staticmethod
    def backward(ctx, dy):
        # torch's own layer-norm backward, fed the statistics saved above in the shapes
        # native_layer_norm would have saved them.
        x, mean, rstd, gamma, beta = ctx.saved_tensors
        need_x, need_gamma, need_beta, _ = ctx.needs_input_grad
        stats = (*x.shape[:-1], 1)
        dx, dgamma, dbeta = torch.ops.aten.native_layer_norm_backward(
            dy, x, [x.shape[-1]], mean.view(stats), rstd.view(stats), gamma, beta,
            [need_x, need_gamma, need_beta])
        return dx, dgamma, dbeta, None
