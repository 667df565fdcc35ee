"""Compiled loops for the statistics core: float32 tensors on CPU (built by `lamina._native`).

Eager torch needs a separate pass over memory (and often a temporary tensor) for each of mean,
centring, squares, sums of products and the final combination; these loops fuse them, so a
norm's forward+backward reads and writes the tensor about eight times instead of twenty. They
cover the norms whose statistics are per (group of rows, channel) — Batch, Instance, Group,
Switchable and Conditional Batch normalization — on the channels_last (A, L, T) view; two more
compute SwitchableNorm's mixture of statistics and its gradient on the (batch, channels) tables.

Everything here is optional: without a C compiler, with `LAMINA_NATIVE_KERNELS=0`, or for other
dtypes and devices, the core runs the same mathematics with eager torch ops.
"""

from __future__ import annotations

import functools

import torch

from lamina import _native
from lamina._native import INT as _i
from lamina._native import LONG as _n
from lamina._native import POINTER as _f

_SOURCE = r"""
/* Fused CPU loops for lamina's normalization statistics core (float32).

   Every function sees its input as (A, L, T): A independent groups, each of L rows of T
   contiguous values, consecutive groups `stride` values apart. Statistics are per (group,
   column): a BatchNorm is one group of all rows, an InstanceNorm one group per sample.
   Reductions run over L in blocks small enough to stay in cache, so the two-pass variance reads
   memory once; blocks are merged in double precision (Chan et al.'s pairwise update).
   Tables (mean, scale, ...) hold one row of T values per group.

   Work is shared by `threads` OpenMP threads: over the groups when there are enough of them,
   else over the rows of each group, with per-thread partial results merged at the end. Linked
   against the libgomp torch itself loads, the threads are torch's own. The caller provides the
   workspace: per thread 2T doubles and 2T floats. */

#include <math.h>
#include <omp.h>
""" + _native.VARIANTS + r"""
/* Floats per block: 32 Ki x 4 B = 128 KiB, comfortably inside a core's L2 cache. */
#define BLOCK_FLOATS 32768

static long block_rows(long T) {
    long rows = BLOCK_FLOATS / T;
    return rows < 1 ? 1 : rows;
}

/* Merge the moments of rows [x, x + n*T) into (count, mean, m2), n >= 1. */
VARIANTS void lamina_moments_rows(const float *restrict x, long n_rows, long T, long *count,
                                  double *restrict mean, double *restrict m2, float *restrict block) {
    float *block_mean = block, *block_m2 = block + T;
    long rows = block_rows(T);
    for (long l0 = 0; l0 < n_rows; l0 += rows) {
        long n = n_rows - l0 < rows ? n_rows - l0 : rows;
        const float *xb = x + l0 * T;
        for (long t = 0; t < T; t++) block_mean[t] = block_m2[t] = 0.0f;
        for (long l = 0; l < n; l++)
            for (long t = 0; t < T; t++) block_mean[t] += xb[l * T + t];
        for (long t = 0; t < T; t++) block_mean[t] /= (float)n;
        for (long l = 0; l < n; l++)
            for (long t = 0; t < T; t++) {
                float d = xb[l * T + t] - block_mean[t];
                block_m2[t] += d * d;
            }
        long total = *count + n;
        double w_new = (double)n / total, w_cross = (double)*count * n / total;
        for (long t = 0; t < T; t++) {
            double delta = (double)block_mean[t] - mean[t];
            mean[t] += delta * w_new;
            m2[t] += block_m2[t] + delta * delta * w_cross;
        }
        *count = total;
    }
}

/* Add the sums over rows [.., + n*T) of dy and dy * (x - m) into acc (2T doubles). With rs, rb
   (a ReLU after the affine map), dy counts only where (x - m) * rs + rb > 0. */
VARIANTS void lamina_sums_rows(const float *restrict dy, const float *restrict x, long n_rows, long T,
                               const float *restrict m, double *restrict acc, float *restrict block,
                               const float *restrict rs, const float *restrict rb) {
    float *block_dy = block, *block_dyc = block + T;
    long rows = block_rows(T);
    for (long l0 = 0; l0 < n_rows; l0 += rows) {
        long n = n_rows - l0 < rows ? n_rows - l0 : rows;
        const float *xb = x + l0 * T, *gb = dy + l0 * T;
        for (long t = 0; t < T; t++) block_dy[t] = block_dyc[t] = 0.0f;
        if (rs)
            for (long l = 0; l < n; l++)
                for (long t = 0; t < T; t++) {
                    float c = xb[l * T + t] - m[t];
                    float g = c * rs[t] + rb[t] > 0.0f ? gb[l * T + t] : 0.0f;
                    block_dy[t] += g;
                    block_dyc[t] += g * c;
                }
        else
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
}

VARIANTS void lamina_affine_rows(const float *restrict x, float *restrict y, long n_rows, long T,
                                 const float *restrict m, const float *restrict s, const float *restrict b,
                                 int relu) {
    if (relu)
        for (long l = 0; l < n_rows; l++)
            for (long t = 0; t < T; t++) {
                float v = (x[l * T + t] - m[t]) * s[t] + b[t];
                y[l * T + t] = v > 0.0f ? v : 0.0f;
            }
    else
        for (long l = 0; l < n_rows; l++)
            for (long t = 0; t < T; t++) y[l * T + t] = (x[l * T + t] - m[t]) * s[t] + b[t];
}

/* dx = dy * s + (x - m) * k + c; with rb (a ReLU after the affine map (x - m) * s + rb), dy
   counts only where that is > 0. */
VARIANTS void lamina_combine_rows(const float *restrict dy, const float *restrict x, float *restrict dx,
                                  long n_rows, long T, const float *restrict m, const float *restrict s,
                                  const float *restrict k, const float *restrict c,
                                  const float *restrict rb) {
    if (rb)
        for (long l = 0; l < n_rows; l++)
            for (long t = 0; t < T; t++) {
                float d = x[l * T + t] - m[t];
                float g = d * s[t] + rb[t] > 0.0f ? dy[l * T + t] : 0.0f;
                dx[l * T + t] = g * s[t] + d * k[t] + c[t];
            }
    else
        for (long l = 0; l < n_rows; l++)
            for (long t = 0; t < T; t++)
                dx[l * T + t] = dy[l * T + t] * s[t] + (x[l * T + t] - m[t]) * k[t] + c[t];
}

/* The rows [first, last) of `part` out of `parts` equal shares of L. */
static void share(long L, int part, int parts, long *first, long *last) {
    *first = L * part / parts;
    *last = L * (part + 1) / parts;
}

/* mean and biased variance over L, per (group, column). */
void lamina_moments(const float *x, long A, long L, long T, long stride, float *mean, float *var,
                    int threads, double *work, float *block) {
    if (A >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long a = 0; a < A; a++) {
            int i = omp_get_thread_num();
            double *m = work + 2 * T * i, *m2 = m + T;
            long count = 0;
            for (long t = 0; t < 2 * T; t++) m[t] = 0.0;
            lamina_moments_rows(x + a * stride, L, T, &count, m, m2, block + 2 * T * i);
            for (long t = 0; t < T; t++) {
                mean[a * T + t] = (float)m[t];
                var[a * T + t] = (float)(m2[t] / count);
            }
        }
        return;
    }
    long counts[threads];
    for (long a = 0; a < A; a++) {
#pragma omp parallel num_threads(threads)
        {
            int i = omp_get_thread_num(), n = omp_get_num_threads();
            long first, last;
            share(L, i, n, &first, &last);
            double *m = work + 2 * T * i;
            counts[i] = 0;
            for (long t = 0; t < 2 * T; t++) m[t] = 0.0;
            if (last > first)
                lamina_moments_rows(x + a * stride + first * T, last - first, T, &counts[i], m, m + T,
                                    block + 2 * T * i);
        }
        /* Merge the threads' moments into the first one's (Chan et al.). */
        double *m = work, *m2 = work + T;
        long count = counts[0];
        for (int i = 1; i < threads; i++) {
            double *mi = work + 2 * T * i, *m2i = mi + T;
            long n = counts[i], total = count + n;
            if (n == 0) continue;
            for (long t = 0; t < T; t++) {
                double delta = mi[t] - m[t];
                m[t] += delta * n / total;
                m2[t] += m2i[t] + delta * delta * ((double)count * n / total);
            }
            count = total;
        }
        for (long t = 0; t < T; t++) {
            mean[a * T + t] = (float)m[t];
            var[a * T + t] = (float)(m2[t] / count);
        }
    }
}

/* Sums over L of dy and of dy * (x - mean), per (group, column). */
void lamina_sums(const float *dy, const float *x, long A, long L, long T, long stride, const float *mean,
                 float *sum_dy, float *sum_dy_centered, int threads, double *work, float *block,
                 const float *rs, const float *rb) {
    if (A >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long a = 0; a < A; a++) {
            int i = omp_get_thread_num();
            double *acc = work + 2 * T * i;
            for (long t = 0; t < 2 * T; t++) acc[t] = 0.0;
            lamina_sums_rows(dy + a * stride, x + a * stride, L, T, mean + a * T, acc, block + 2 * T * i,
                             rs ? rs + a * T : 0, rb ? rb + a * T : 0);
            for (long t = 0; t < T; t++) {
                sum_dy[a * T + t] = (float)acc[t];
                sum_dy_centered[a * T + t] = (float)acc[T + t];
            }
        }
        return;
    }
    for (long a = 0; a < A; a++) {
#pragma omp parallel num_threads(threads)
        {
            int i = omp_get_thread_num(), n = omp_get_num_threads();
            long first, last;
            share(L, i, n, &first, &last);
            double *acc = work + 2 * T * i;
            for (long t = 0; t < 2 * T; t++) acc[t] = 0.0;
            lamina_sums_rows(dy + a * stride + first * T, x + a * stride + first * T, last - first, T,
                             mean + a * T, acc, block + 2 * T * i, rs ? rs + a * T : 0, rb ? rb + a * T : 0);
        }
        for (long t = 0; t < 2 * T; t++) {
            double total = 0.0;
            for (int i = 0; i < threads; i++) total += work[2 * T * i + t];
            (t < T ? sum_dy : sum_dy_centered)[a * T + t % T] = (float)total;
        }
    }
}

/* y = (x - mean) * scale + shift. */
void lamina_affine(const float *x, float *y, long A, long L, long T, long stride, const float *mean,
                   const float *scale, const float *shift, int threads, int relu) {
    long chunk = block_rows(T);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (long a = 0; a < A; a++)
        for (long l0 = 0; l0 < L; l0 += chunk) {
            long n = L - l0 < chunk ? L - l0 : chunk, start = a * stride + l0 * T;
            lamina_affine_rows(x + start, y + start, n, T, mean + a * T, scale + a * T, shift + a * T, relu);
        }
}

/* dx = dy * scale + (x - mean) * slope + offset. */
void lamina_combine(const float *dy, const float *x, float *dx, long A, long L, long T, long stride,
                    const float *mean, const float *scale, const float *slope, const float *offset,
                    int threads, const float *rb) {
    long chunk = block_rows(T);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (long a = 0; a < A; a++)
        for (long l0 = 0; l0 < L; l0 += chunk) {
            long n = L - l0 < chunk ? L - l0 : chunk, start = a * stride + l0 * T;
            lamina_combine_rows(dy + start, x + start, dx + start, n, T, mean + a * T, scale + a * T,
                                slope + a * T, offset + a * T, rb ? rb + a * T : 0);
        }
}

/* SwitchableNorm's mixture on (n, c) instance statistics, in double precision: the layer
   branch pools over c (per sample), the batch branch over n (per channel) when batch_pooled,
   else it is the given moving statistics; branches = 2 leaves it out. Writes the softmax weights
   wm, wv, the mixed mean, 1/sqrt(mixed var + eps), scale = that * gamma and shift = beta per
   (sample, channel), and the pooled statistics. gamma and beta may be NULL. */
static void softmax3(const float *logits, int k, double *w) {
    double top = logits[0], total = 0.0;
    for (int i = 1; i < k; i++) top = logits[i] > top ? logits[i] : top;
    for (int i = 0; i < k; i++) { w[i] = exp(logits[i] - top); total += w[i]; }
    for (int i = 0; i < k; i++) w[i] /= total;
}

/* Mean and variance of groups of equal-sized groups (the law of total variance): group g of
   `groups` pools the `members` (mean, var) pairs at g * group_stride + k * member_stride. */
static void pool(const float *mean, const float *var, long groups, long members, long group_stride,
                 long member_stride, float *pooled_mean, float *pooled_var) {
    for (long g = 0; g < groups; g++) {
        const float *m_at = mean + g * group_stride, *v_at = var + g * group_stride;
        double m = 0.0, v = 0.0;
        for (long k = 0; k < members; k++) m += m_at[k * member_stride];
        m /= members;
        for (long k = 0; k < members; k++) {
            double d = m_at[k * member_stride] - m;
            v += v_at[k * member_stride] + d * d;
        }
        pooled_mean[g] = (float)m;
        pooled_var[g] = (float)(v / members);
    }
}

void lamina_sn_mix_forward(const float *mean_in, const float *var_in, long n, long c, int branches,
                           int batch_pooled, const float *mean_logits, const float *var_logits,
                           const float *moving_mean, const float *moving_var, const float *gamma,
                           const float *beta, float eps, float *wm_out, float *wv_out, float *mean_mix,
                           float *inv_std, float *scale, float *shift, float *mean_ln, float *var_ln,
                           float *mean_bn, float *var_bn) {
    double wm[3], wv[3];
    softmax3(mean_logits, branches, wm);
    softmax3(var_logits, branches, wv);
    for (int k = 0; k < branches; k++) { wm_out[k] = (float)wm[k]; wv_out[k] = (float)wv[k]; }
    pool(mean_in, var_in, n, c, c, 1, mean_ln, var_ln);           /* layer: over the channels */
    if (branches == 3 && batch_pooled) {
        pool(mean_in, var_in, c, n, 1, c, mean_bn, var_bn);       /* batch: over the samples */
    } else if (branches == 3) {
        for (long j = 0; j < c; j++) { mean_bn[j] = moving_mean[j]; var_bn[j] = moving_var[j]; }
    }
    for (long i = 0; i < n; i++)
        for (long j = 0; j < c; j++) {
            long at = i * c + j;
            double m = wm[0] * mean_in[at] + wm[1] * mean_ln[i];
            double v = wv[0] * var_in[at] + wv[1] * var_ln[i];
            if (branches == 3) { m += wm[2] * mean_bn[j]; v += wv[2] * var_bn[j]; }
            double inv = 1.0 / sqrt(v + (double)eps);
            mean_mix[at] = (float)m;
            inv_std[at] = (float)inv;
            scale[at] = (float)(gamma ? inv * gamma[j] : inv);
            shift[at] = beta ? beta[j] : 0.0f;
        }
}

/* Its gradient. From the kernels' per (sample, channel) sums of dy and dy * (x - mixed mean):
   grad_gamma, grad_beta (NULL when absent), the gradients of the logits, and the tables of the
   final combination dx = dy * scale + (x - mean_in) * slope + offset. */
void lamina_sn_mix_backward(const float *sum_dy, const float *sum_dyc, long n, long c, long length,
                            int branches, int batch_pooled, const float *wm_in, const float *wv_in,
                            const float *mean_in, const float *var_in, const float *inv_std,
                            const float *scale, const float *mean_ln, const float *var_ln,
                            const float *mean_bn, const float *var_bn, float *grad_gamma,
                            float *grad_beta, float *grad_mean_logits, float *grad_var_logits,
                            float *slope, float *offset, double *work) {
    double wm[3], wv[3], pm[3] = {0, 0, 0}, pv[3] = {0, 0, 0};
    for (int k = 0; k < branches; k++) { wm[k] = wm_in[k]; wv[k] = wv_in[k]; }
    double *row_m = work, *row_v = work + n, *col_m = work + 2 * n, *col_v = work + 2 * n + c;
    for (long i = 0; i < n; i++) row_m[i] = row_v[i] = 0.0;
    for (long j = 0; j < c; j++) col_m[j] = col_v[j] = 0.0;
    if (grad_gamma) for (long j = 0; j < c; j++) grad_gamma[j] = 0.0f;
    if (grad_beta) for (long j = 0; j < c; j++) grad_beta[j] = 0.0f;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < c; j++) {
            long at = i * c + j;
            double inv = inv_std[at];
            double g_mean = -(double)sum_dy[at] * scale[at];
            double g_var = -0.5 * (double)sum_dyc[at] * scale[at] * inv * inv;
            if (grad_gamma) grad_gamma[j] += (float)((double)sum_dyc[at] * inv);
            if (grad_beta) grad_beta[j] += sum_dy[at];
            row_m[i] += g_mean; row_v[i] += g_var; col_m[j] += g_mean; col_v[j] += g_var;
            pm[0] += g_mean * mean_in[at];
            pv[0] += g_var * var_in[at];
            slope[at] = (float)g_var;     /* kept here until the pooled sums are known */
            offset[at] = (float)g_mean;
        }
    for (long i = 0; i < n; i++) { pm[1] += row_m[i] * mean_ln[i]; pv[1] += row_v[i] * var_ln[i]; }
    if (branches == 3)
        for (long j = 0; j < c; j++) { pm[2] += col_m[j] * mean_bn[j]; pv[2] += col_v[j] * var_bn[j]; }
    double sm = 0.0, sv = 0.0;
    for (int k = 0; k < branches; k++) { sm += wm[k] * pm[k]; sv += wv[k] * pv[k]; }
    for (int k = 0; k < branches; k++) {
        grad_mean_logits[k] = (float)(wm[k] * (pm[k] - sm));
        grad_var_logits[k] = (float)(wv[k] * (pv[k] - sv));
    }
    int bn = branches == 3 && batch_pooled;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < c; j++) {
            long at = i * c + j;
            double g_mean = offset[at], g_var = slope[at];
            double g_mean_in = wm[0] * g_mean + wm[1] / c * row_m[i]
                               + 2.0 * wv[1] / c * row_v[i] * (mean_in[at] - mean_ln[i]);
            double g_var_in = wv[0] * g_var + wv[1] / c * row_v[i];
            if (bn) {
                g_mean_in += wm[2] / n * col_m[j] + 2.0 * wv[2] / n * col_v[j] * (mean_in[at] - mean_bn[j]);
                g_var_in += wv[2] / n * col_v[j];
            }
            slope[at] = (float)(2.0 * g_var_in / length);
            offset[at] = (float)(g_mean_in / length);
        }
}
"""

# Below this many elements, sharing work between threads costs more than it saves.
_PARALLEL_MIN_NUMEL = 1 << 16

_SIGNATURES = {
    "lamina_moments": [_f, _n, _n, _n, _n, _f, _f, _i, _f, _f],
    "lamina_sums": [_f, _f, _n, _n, _n, _n, _f, _f, _f, _i, _f, _f, _f, _f],
    "lamina_affine": [_f, _f, _n, _n, _n, _n, _f, _f, _f, _i, _i],
    "lamina_combine": [_f, _f, _f, _n, _n, _n, _n, _f, _f, _f, _f, _i, _f],
    "lamina_sn_mix_forward": [_f, _f, _n, _n, _i, _i, _f, _f, _f, _f, _f, _f, _native.FLOAT,
                              _f, _f, _f, _f, _f, _f, _f, _f, _f, _f],
    "lamina_sn_mix_backward": [_f, _f, _n, _n, _n, _i, _i, _f, _f, _f, _f, _f, _f, _f, _f, _f, _f,
                               _f, _f, _f, _f, _f, _f, _f],
}


@functools.cache
def library():
    """The loaded kernels, or None where they cannot be used (the core then stays eager)."""
    return _native.load("norm", _SOURCE, _SIGNATURES, "normalization layers run on eager torch ops")


def usable(*tensors) -> bool:
    """Whether these tensors can go through the kernels: contiguous float32 on CPU, in an eager
    call (`_native.eager`)."""
    return (_native.eager() and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
                                    for t in tensors) and library() is not None)


def _threads(A: int, L: int, T: int) -> int:
    return torch.get_num_threads() if A * L * T >= _PARALLEL_MIN_NUMEL else 1


_ptr = _native.pointer
_ptrs = _native.pointers


def _workspace(threads: int, T: int):
    """Per thread: 2T double accumulators and 2T float block sums."""
    return torch.empty(threads * 2 * T, dtype=torch.float64), torch.empty(threads * 2 * T)


def moments(x: torch.Tensor, A: int, L: int, T: int):
    """Per (group, column) mean and biased variance over L of x seen as (A, L, T)."""
    threads = _threads(A, L, T)
    mean, var = torch.empty(A, T), torch.empty(A, T)
    work, block = _workspace(threads, T)
    library().lamina_moments(_ptr(x), A, L, T, L * T, _ptr(mean), _ptr(var), threads, _ptr(work), _ptr(block))
    return mean, var


def sums(dy: torch.Tensor, x: torch.Tensor, A: int, L: int, T: int, mean, relu_scale=None,
         relu_shift=None):
    """Per (group, column) sums over L of dy and of dy * (x - mean); with the (A, T) tables
    relu_scale and relu_shift, dy counts only where (x - mean) * relu_scale + relu_shift > 0 (the
    gradient through a ReLU applied after that affine map)."""
    threads = _threads(A, L, T)
    sum_dy, sum_dy_centered = torch.empty(A, T), torch.empty(A, T)
    work, block = _workspace(threads, T)
    library().lamina_sums(_ptr(dy), _ptr(x), A, L, T, L * T, _ptr(mean), _ptr(sum_dy), _ptr(sum_dy_centered),
                          threads, _ptr(work), _ptr(block), _ptr(relu_scale),
                          _ptr(relu_shift))
    return sum_dy, sum_dy_centered


def affine(x: torch.Tensor, A: int, L: int, T: int, mean, scale, shift, relu=False) -> torch.Tensor:
    """(x - mean) * scale + shift with (A, T) tables, then max(., 0) with `relu`, into a new tensor."""
    y = torch.empty_like(x)
    library().lamina_affine(_ptr(x), _ptr(y), A, L, T, L * T, _ptr(mean), _ptr(scale), _ptr(shift),
                            _threads(A, L, T), int(relu))
    return y


def combine(dy: torch.Tensor, x: torch.Tensor, A: int, L: int, T: int, mean, scale, slope, offset,
            relu_shift=None):
    """dy * scale + (x - mean) * slope + offset with (A, T) tables, into a new tensor; with
    relu_shift, dy counts only where (x - mean) * scale + relu_shift > 0."""
    dx = torch.empty_like(x)
    library().lamina_combine(_ptr(dy), _ptr(x), _ptr(dx), A, L, T, L * T, _ptr(mean), _ptr(scale),
                             _ptr(slope), _ptr(offset), _threads(A, L, T), _ptr(relu_shift))
    return dx


def sn_mix_forward(mean_in, var_in, mean_logits, var_logits, moving, gamma, beta, epsilon, batch_pooled):
    """SwitchableNorm's mixture of (n, c) instance statistics (see the C source): returns the
    softmax weights (wm, wv), the (n, c) tables mean_mix, inv_std, scale, shift, and the layer
    (n,) and batch (c,) branch statistics (empty without a batch branch)."""
    n, c = mean_in.shape
    branches = mean_logits.numel()
    out = torch.empty(2 * branches + 4 * n * c + 2 * n + 2 * c)
    sizes = [branches, branches, n * c, n * c, n * c, n * c, n, n, c, c]
    wm, wv, mean_mix, inv_std, scale, shift, mean_ln, var_ln, mean_bn, var_bn = out.split(sizes)
    moving_mean, moving_var = moving if moving is not None else (None, None)
    library().lamina_sn_mix_forward(
        *_ptrs(mean_in, var_in), n, c, branches, int(batch_pooled),
        *_ptrs(mean_logits, var_logits, moving_mean, moving_var, gamma, beta), epsilon,
        *_ptrs(wm, wv, mean_mix, inv_std, scale, shift, mean_ln, var_ln, mean_bn, var_bn))
    tables = [t.view(n, c) for t in (mean_mix, inv_std, scale, shift)]
    return wm, wv, *tables, mean_ln, var_ln, mean_bn, var_bn


def sn_mix_backward(sum_dy, sum_dy_centered, length, batch_pooled, wm, wv, mean_in, var_in, inv_std, scale,
                    mean_ln, var_ln, mean_bn, var_bn, has_gamma, has_beta):
    """The mixture's gradient: (grad_gamma, grad_beta, grad of the mean and variance logits, and the
    (n, c) slope and offset tables of dx = dy * scale + (x - mean_in) * slope + offset)."""
    n, c = sum_dy.shape
    branches = wm.numel()
    grad_gamma = torch.empty(c) if has_gamma else None
    grad_beta = torch.empty(c) if has_beta else None
    grad_mean_logits, grad_var_logits = torch.empty(branches), torch.empty(branches)
    slope, offset = torch.empty(n, c), torch.empty(n, c)
    work = torch.empty(2 * n + 2 * c, dtype=torch.float64)
    library().lamina_sn_mix_backward(
        *_ptrs(sum_dy, sum_dy_centered), n, c, length, branches, int(batch_pooled),
        *_ptrs(wm, wv, mean_in, var_in, inv_std, scale, mean_ln, var_ln, mean_bn, var_bn),
        *_ptrs(grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, slope, offset, work))
    return grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, slope, offset
