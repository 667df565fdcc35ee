"""Dense's product for a few rows at inference: a compiled matrix-vector loop over both cores.

A single sample (or a handful) through a Dense layer is a matrix-vector product: every weight is
read once and used once per row, so the time is the time to stream the kernel from cache. torch's
`F.linear` hands it to MKL, which on CPUs it does not recognise (AMD's) runs a generic path on one
thread. This loop reads four weight rows at a time against each input row, sixteen lanes wide
(AVX-512 where the CPU has it, chosen at load time), and splits the output units between torch's
threads. Measured on a 2-core AMD EPYC (Zen 5), one call from Python included:
(1, 500) x (500, 500) 14.0 -> 7.3 us, (4, 500) x (500, 500) 39.7 -> 14.7 us,
(1, 1000) x (1000, 1000) 50 -> 24 us. Below `MIN_WEIGHTS_PER_ROW` weights per input row (+1) the
call's fixed cost outweighs that, and from `MAX_ROWS` rows on torch's GEMM wins.

Used by `layers/_linear.py` only where no gradient is wanted (inference: predict, evaluate, a
call under torch.no_grad), eagerly, on contiguous float32 CPU tensors. The sum runs in float32 in
sixteen partial sums, so the last bits differ from MKL's order, as two BLAS libraries' do.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from lamina import _native

MAX_ROWS = 16
MIN_WEIGHTS_PER_ROW = 16384  # a (64, 500) kernel at 1 row: 3.5 us either way

_SOURCE = r"""
#include <omp.h>
""" + _native.VARIANTS + r"""

/* y[m, n] = act(b[n] + sum_k x[m, k] w[n, k]) for the output units n in [n0, n1), four weight
   rows at a time (four independent 16-lane sums keep the FMA units busy). */
VARIANTS static void units(const float *restrict x, long M, long K, const float *restrict w,
                           const float *restrict b, float *restrict y, long N, long n0, long n1,
                           int relu) {
    long n = n0;
    for (; n + 4 <= n1; n += 4) {
        const float *w0 = w + n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        for (long m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
            long k = 0;
            for (; k + 16 <= K; k += 16)
                for (int l = 0; l < 16; l++) {
                    float v = xm[k + l];
                    a0[l] += w0[k + l] * v; a1[l] += w1[k + l] * v;
                    a2[l] += w2[k + l] * v; a3[l] += w3[k + l] * v;
                }
            float s[4] = {0, 0, 0, 0};
            for (int l = 0; l < 16; l++) { s[0] += a0[l]; s[1] += a1[l]; s[2] += a2[l]; s[3] += a3[l]; }
            for (; k < K; k++) {
                float v = xm[k];
                s[0] += w0[k] * v; s[1] += w1[k] * v; s[2] += w2[k] * v; s[3] += w3[k] * v;
            }
            for (int j = 0; j < 4; j++) {
                float v = b ? s[j] + b[n + j] : s[j];
                y[m * N + n + j] = relu && v < 0 ? 0.0f : v;
            }
        }
    }
    for (; n < n1; n++) {
        const float *w0 = w + n * K;
        for (long m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float a0[16] = {0};
            long k = 0;
            for (; k + 16 <= K; k += 16)
                for (int l = 0; l < 16; l++) a0[l] += w0[k + l] * xm[k + l];
            float s = 0;
            for (int l = 0; l < 16; l++) s += a0[l];
            for (; k < K; k++) s += w0[k] * xm[k];
            float v = b ? s + b[n] : s;
            y[m * N + n] = relu && v < 0 ? 0.0f : v;
        }
    }
}

/* A stack of Dense layers in one parallel region: layer l maps (M, dims[l]) to (M, dims[l+1])
   with w[l], b[l] (NULL: none) and relu[l]; each thread computes its share of a layer's units,
   waits for the others, and goes on to the next layer. Layer outputs alternate between the two
   halves of `scratch` (2 * M * max(dims)); the last goes to `out`. */
void lamina_dense_chain(const float *x, long M, int L, const long *dims, const float **w,
                        const float **b, const int *relu, float *scratch, float *out, int threads) {
    long widest = 0;
    for (int l = 1; l < L; l++) widest = dims[l] > widest ? dims[l] : widest;
#pragma omp parallel num_threads(threads)
    {
        long t = omp_get_thread_num(), T = omp_get_num_threads();
        const float *in = x;
        for (int l = 0; l < L; l++) {
            long K = dims[l], N = dims[l + 1], groups = (N + 3) / 4;
            float *y = l == L - 1 ? out : scratch + (l % 2) * M * widest;
            long n0 = groups * t / T * 4, n1 = groups * (t + 1) / T * 4;
            units(in, M, K, w[l], b[l], y, N, n0, n1 < N ? n1 : N, relu[l]);
#pragma omp barrier
            in = y;
        }
    }
}

/* y (M, N) = x (M, K) @ w (N, K)^T (+ b) (then max(., 0)), the units split between threads in
   groups of four: the chain of one layer, as its own entry point because the chain's call from
   Python (its pointer arrays and scratch) costs ~3 us more, measured 8.0 vs 11.0 us on a
   (1, 500) x (500, 500) product. */
void lamina_small_linear(const float *x, long M, long K, const float *w, const float *b, float *y,
                         long N, int relu, int threads) {
#pragma omp parallel num_threads(threads)
    {
        long t = omp_get_thread_num(), T = omp_get_num_threads(), groups = (N + 3) / 4;
        long n0 = groups * t / T * 4, n1 = groups * (t + 1) / T * 4;
        units(x, M, K, w, b, y, N, n0, n1 < N ? n1 : N, relu);
    }
}
"""

_P, _L, _I = _native.POINTER, _native.LONG, _native.INT
_SIGNATURES = {"lamina_small_linear": [_P, _L, _L, _P, _P, _P, _L, _I, _I],
               "lamina_dense_chain": [_P, _L, _I, _P, _P, _P, _P, _P, _P, _I]}


@functools.cache
def library():
    return _native.load("matvec", _SOURCE, _SIGNATURES, "Dense at inference runs torch's F.linear")


def usable(rows: int, kernel: torch.Tensor) -> bool:
    """Whether `rows` input rows against `kernel` (out, in) are few enough and the kernel large
    enough for the loop to beat torch's call (the caller checks dtype, device and grad mode)."""
    return (rows <= MAX_ROWS and kernel.numel() >= MIN_WEIGHTS_PER_ROW * (rows + 1)
            and kernel.is_contiguous() and library() is not None)


def small_linear(rows: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None,
                 relu: bool) -> torch.Tensor:
    """rows (M, K) @ kernel (N, K)^T (+ bias) (then max(., 0) with `relu`), float32 on the CPU."""
    rows = rows.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    m, k = rows.shape
    n = kernel.shape[0]
    out = rows.new_empty(m, n)
    library().lamina_small_linear(rows.data_ptr(), m, k, kernel.data_ptr(),
                                  None if bias is None else bias.data_ptr(), out.data_ptr(), n,
                                  int(relu), torch.get_num_threads())
    return out


def dense_chain(rows: torch.Tensor, kernels, biases, relus) -> torch.Tensor:
    """Several Dense products in a row in one call (the Sequential inference plan's chain of
    Dense layers): rows (M, K0) through kernels (K1, K0), (K2, K1), ... each with its bias (or
    None) and then max(., 0) where `relus` says; float32 contiguous CPU tensors. One call and one
    parallel region instead of one of each per layer: on one sample, each layer's call from
    Python costs about as much as a 500 x 500 product."""
    m = rows.shape[0]
    count = len(kernels)
    dims = [rows.shape[1]] + [k.shape[0] for k in kernels]
    scratch = rows.new_empty(2 * m * max(dims[1:]))
    out = rows.new_empty(m, dims[-1])
    library().lamina_dense_chain(
        rows.data_ptr(), m, count, (ctypes.c_long * (count + 1))(*dims),
        (ctypes.c_void_p * count)(*[k.data_ptr() for k in kernels]),
        (ctypes.c_void_p * count)(*[None if b is None else b.data_ptr() for b in biases]),
        (ctypes.c_int * count)(*relus), scratch.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out
