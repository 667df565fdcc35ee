"""The normalization family's operators: statistics and their gradients, with compiled loops.

`lamina::normalize` standardizes x with its own statistics over some dims (Batch, Instance,
Group, Layer and Conditional Batch normalization, each a view and a set of dims), then applies
the affine map (and a ReLU); `lamina::normalize_with` does it with given statistics (moving
averages, masked statistics); `lamina::switchable_normalize` is SwitchableNorm's mixture of
instance, layer and batch statistics. Each has a backward operator derived by hand: the gradient
reaching x through the statistics and through the output is one fused expression,
dy * scale + (x - mean) * slope + offset with per-statistic tables, so a forward+backward reads
the tensor a handful of times instead of the twenty passes autograd would record.

Where the work runs is decided here, once per operator or loop:
- Four loops do the full-size work: moments, the affine map, the backward sums and the backward
  combination, on an (A, L, T) view (A groups of L rows of T values; statistics per (group,
  column)). Each is a compiled C loop for float32 contiguous CPU tensors and the same formula in
  torch ops otherwise (`_moments`, `_affine_rows`, `_sums`, `_combine_rows`).
- Trailing dims (LayerNorm) go to a compiled row loop on large float32 CPU tensors, else torch's
  fused `native_layer_norm`; their backward is torch's layer-norm backward either way.
- BatchNorm's layout (statistics along dim 1 alone) off the CPU goes to torch's fused
  `native_batch_norm` (one kernel launch instead of several); so do given statistics on any
  device (`normalize_with`).

Statistics are float32 for float16/bfloat16 inputs, outputs keep the input's dtype; every buffer
is allocated from the inputs, never in the default dtype. Variances are biased (Keras keeps
them) and two-pass, so a large mean does not cancel a small variance.

The compiled loops are built by `lamina._native` (a C compiler at first use); without one, with
`LAMINA_NATIVE_KERNELS=0`, or for other dtypes and devices the torch formulas run.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import distributed as dist

from lamina import _native
from lamina._native import FLOAT as _e
from lamina._native import INT as _i
from lamina._native import LONG as _n
from lamina._native import POINTER as _f
from lamina.kernels._ops import as_float32, decomposes, on_loops, operator, recomputed_grads

_STATISTICS_SOURCE = r"""
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

_LAYER_NORM_SOURCE = r"""
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

_STATISTICS_SIGNATURES = {
    "lamina_moments": [_f, _n, _n, _n, _n, _f, _f, _i, _f, _f],
    "lamina_sums": [_f, _f, _n, _n, _n, _n, _f, _f, _f, _i, _f, _f, _f, _f],
    "lamina_affine": [_f, _f, _n, _n, _n, _n, _f, _f, _f, _i, _i],
    "lamina_combine": [_f, _f, _f, _n, _n, _n, _n, _f, _f, _f, _f, _i, _f],
    "lamina_sn_mix_forward": [_f, _f, _n, _n, _i, _i, _f, _f, _f, _f, _f, _f, _e,
                              _f, _f, _f, _f, _f, _f, _f, _f, _f, _f],
    "lamina_sn_mix_backward": [_f, _f, _n, _n, _n, _i, _i, _f, _f, _f, _f, _f, _f, _f, _f, _f, _f,
                               _f, _f, _f, _f, _f, _f, _f],
}
_LAYER_NORM_SIGNATURES = {"lamina_layer_norm_forward": [_f, _f, _f, _f, _f, _f, _n, _n, _e, _i]}

# Below this many elements, sharing work between threads costs more than it saves.
_PARALLEL_MIN_NUMEL = 1 << 16
# The layer-norm row loop beats torch's fused kernel from this many values (1.4-1.6x on
# channels_last activations, e.g. (16, 32, 32, 64): 0.28 -> 0.18 ms at 2 threads); below, torch's
# is as fast. Its backward is torch's: a hand-written one measured 1.3-1.5x slower.
_LAYER_NORM_MIN_NUMEL = 1 << 15


@functools.cache
def _statistics_library():
    return _native.load("norm", _STATISTICS_SOURCE, _STATISTICS_SIGNATURES,
                        "normalization layers run on torch ops")


@functools.cache
def _layer_norm_library():
    return _native.load("layer_norm", _LAYER_NORM_SOURCE, _LAYER_NORM_SIGNATURES,
                        "LayerNormalization runs torch's layer_norm")


def _on_statistics_loops(*tensors) -> bool:
    return on_loops(*tensors) and _statistics_library() is not None


def _threads(A: int, L: int, T: int) -> int:
    return torch.get_num_threads() if A * L * T >= _PARALLEL_MIN_NUMEL else 1


# --- The four full-size loops on (A, L, T) views with (A, T) tables: compiled, or torch's ops.

def _workspace(x, threads: int, T: int):
    """Per thread: 2T double accumulators and 2T float block sums."""
    return x.new_empty(threads * 2 * T, dtype=torch.float64), x.new_empty(threads * 2 * T)


def _moments(x):
    """Per (group, column) mean and biased variance over L of x (A, L, T)."""
    A, L, T = x.shape
    if not _on_statistics_loops(x):
        mean = x.mean(1)
        return mean, (x - mean.unsqueeze(1)).square().mean(1)
    threads = _threads(A, L, T)
    mean, var = x.new_empty(A, T), x.new_empty(A, T)
    work, block = _workspace(x, threads, T)
    c = functools.partial(_native.checked, "lamina_moments")
    _statistics_library().lamina_moments(c(x, (A, L, T)), A, L, T, L * T, c(mean, (A, T)), c(var, (A, T)),
                                         threads, work.data_ptr(), c(block, block.shape))
    return mean, var


def _relu_mask(x, mean, scale, shift):
    """Where the affine map (x - mean) * scale + shift, tables (A, T), is positive (a ReLU's gate)."""
    return (x - mean.unsqueeze(1)) * scale.unsqueeze(1) + shift.unsqueeze(1) > 0


def _affine_rows(x, mean, scale, shift, relu=False):
    """(x - mean) * scale + shift with (A, T) tables, then max(., 0) with `relu`, in a new tensor."""
    A, L, T = x.shape
    if not _on_statistics_loops(x, mean, scale, shift):
        y = torch.addcmul(shift.unsqueeze(1), x - mean.unsqueeze(1), scale.unsqueeze(1))
        return y.relu_() if relu else y
    y = torch.empty_like(x)
    c = functools.partial(_native.checked, "lamina_affine")
    _statistics_library().lamina_affine(c(x, (A, L, T)), c(y, (A, L, T)), A, L, T, L * T, c(mean, (A, T)),
                                        c(scale, (A, T)), c(shift, (A, T)), _threads(A, L, T), int(relu))
    return y


def _sums(dy, x, mean, relu_scale=None, relu_shift=None):
    """Per (group, column) sums over L of dy and of dy * (x - mean); with the (A, T) tables
    relu_scale and relu_shift, dy counts only where (x - mean) * relu_scale + relu_shift > 0."""
    A, L, T = x.shape
    if not _on_statistics_loops(dy, x, mean, relu_scale, relu_shift):
        if relu_scale is not None:
            dy = dy * _relu_mask(x, mean, relu_scale, relu_shift)
        return dy.sum(1), (dy * (x - mean.unsqueeze(1))).sum(1)
    threads = _threads(A, L, T)
    sum_dy, sum_dy_centered = x.new_empty(A, T), x.new_empty(A, T)
    work, block = _workspace(x, threads, T)
    c = functools.partial(_native.checked, "lamina_sums")
    _statistics_library().lamina_sums(
        c(dy, (A, L, T)), c(x, (A, L, T)), A, L, T, L * T, c(mean, (A, T)), c(sum_dy, (A, T)),
        c(sum_dy_centered, (A, T)), threads, work.data_ptr(), c(block, block.shape),
        c(relu_scale, (A, T)), c(relu_shift, (A, T)))
    return sum_dy, sum_dy_centered


def _combine_rows(dy, x, mean, scale, slope, offset, relu_shift=None):
    """dy * scale + (x - mean) * slope + offset with (A, T) tables, in a new tensor; with
    relu_shift, dy counts only where (x - mean) * scale + relu_shift > 0."""
    A, L, T = x.shape
    if not _on_statistics_loops(dy, x, mean, scale, slope, offset, relu_shift):
        if relu_shift is not None:
            dy = dy * _relu_mask(x, mean, scale, relu_shift)
        dx = torch.addcmul(offset.unsqueeze(1), x - mean.unsqueeze(1), slope.unsqueeze(1))
        return dx.addcmul_(dy, scale.unsqueeze(1))
    dx = torch.empty_like(x)
    c = functools.partial(_native.checked, "lamina_combine")
    _statistics_library().lamina_combine(
        c(dy, (A, L, T)), c(x, (A, L, T)), c(dx, (A, L, T)), A, L, T, L * T, c(mean, (A, T)),
        c(scale, (A, T)), c(slope, (A, T)), c(offset, (A, T)), _threads(A, L, T), c(relu_shift, (A, T)))
    return dx


# --- The same loops on a view of any rank, reduced over some dims, with broadcastable tables.

@dataclass(frozen=True)
class _Rows:
    """The loops' reading of a view reduced over some dims: (A, L, T) with L the longest reduced
    dim `axis`, A the product of the dims before it and T of those after."""

    axis: int
    A: int
    L: int
    T: int

    @classmethod
    def of(cls, shape, dims):
        axis = max(dims, key=lambda d: shape[d])
        return cls(axis, math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))

    def view(self, x):
        return x.reshape(self.A, self.L, self.T)

    def atom(self, shape):
        """`shape` with the rows' axis 1: the shape of a table, broadcast."""
        atom = list(shape)
        atom[self.axis] = 1
        return atom

    def table(self, t, x):
        """A statistics-sized tensor broadcast to one (A, T) row per group in x's dtype."""
        atom = self.atom(x.shape)
        if t.dtype != x.dtype or list(t.shape) != atom or not t.is_contiguous():
            t = t.to(x.dtype).expand(atom).contiguous()
        return t.view(self.A, self.T)


def _constant_dims(shape, *tables):
    """The dims along which every table (None, a scalar, or of the same rank as `shape`) has size 1."""
    return [d for d in range(len(shape)) if all(t is None or t.ndim == 0 or t.shape[d] == 1 for t in tables)]


def _sum(t, dims):
    """Sum over `dims`, keeping them: the longest first (one pass over the big tensor), then the
    small remainder (one multi-dim reduction over strided axes is several times slower)."""
    dims = sorted((d for d in dims if t.shape[d] > 1), key=lambda d: -t.shape[d])
    if not dims:
        return t
    out = t.sum(dims[0], keepdim=True)
    return out.sum(tuple(dims[1:]), keepdim=True) if len(dims) > 1 else out


def pooled(mean, var, dims):
    """Mean and variance of the union of equal-sized groups with the given statistics (the law
    of total variance): exact, and free of the cancellation of E[x^2] - E[x]^2."""
    pooled_mean = mean.mean(dims, keepdim=True)
    return pooled_mean, var.mean(dims, keepdim=True) + (mean - pooled_mean).square().mean(dims, keepdim=True)


def _moments_over(x, dims):
    """Mean and biased variance over `dims` (kept as size-1 axes)."""
    rows = _Rows.of(x.shape, dims)
    mean, var = (t.reshape(rows.atom(x.shape)) for t in _moments(rows.view(x)))
    rest = [d for d in dims if d != rows.axis and x.shape[d] > 1]
    return pooled(mean, var, rest) if rest else (mean, var)


def _affine(x, mean, scale, shift, relu=False):
    """(x - mean) * scale + shift (then max(., 0)) in a new tensor; the tables broadcast against x."""
    shift = x.new_zeros(()) if shift is None else shift
    dims = _constant_dims(x.shape, mean, scale, shift)
    if not dims:
        y = torch.addcmul(shift, x - mean, scale)
        return y.relu_() if relu else y
    rows = _Rows.of(x.shape, dims)
    tables = (rows.table(t, x) for t in (mean, scale, shift))
    return _affine_rows(rows.view(x), *tables, relu=relu).view(x.shape)


def _backward_sums(dy, x, mean, dims, tables, relu_tables):
    """Sums of dy and dy * (x - mean) (dy gated by the ReLU of `relu_tables` (scale, shift), if
    any): over the rows' axis when every table is constant along it (the rest is summed by
    `_affine_grads`), else the full products."""
    rows = _Rows.of(x.shape, dims)
    if rows.axis in _constant_dims(x.shape, mean, *tables, *relu_tables):
        relu = [rows.table(t, x) for t in relu_tables] or [None, None]
        sums = _sums(rows.view(dy), rows.view(x), rows.table(mean, x), *relu)
        return tuple(s.reshape(rows.atom(x.shape)) for s in sums)
    if relu_tables:
        dy = dy * ((x - mean) * relu_tables[0] + relu_tables[1] > 0)
    return dy, dy * (x - mean)


def _affine_grads(sum_dy, sum_dy_centered, inv_std, weight, bias):
    """Gradients of y = (x - mean) * inv_std * weight + bias with respect to mean, var (through
    inv_std), weight and bias, from dy and dy * (x - mean), full or already partly summed. The sums
    first run over the dims where neither statistics nor parameters vary (a BatchNorm's rows), so
    everything after works on statistics-sized tensors."""
    params = [t for t in (weight, bias) if t is not None]
    inner = [d for d in range(sum_dy.ndim) if inv_std.shape[d] == 1 and all(t.shape[d] == 1 for t in params)]
    sum_dy, sum_dy_centered = _sum(sum_dy, inner), _sum(sum_dy_centered, inner)
    scaled_dy = sum_dy if weight is None else sum_dy * weight
    scaled_dy_centered = sum_dy_centered if weight is None else sum_dy_centered * weight
    grad_mean = -scaled_dy.sum_to_size(inv_std.shape) * inv_std
    grad_var = scaled_dy_centered.sum_to_size(inv_std.shape) * (-0.5 * inv_std**3)
    grad_weight = None if weight is None else (sum_dy_centered * inv_std).sum_to_size(weight.shape)
    grad_bias = None if bias is None else sum_dy.sum_to_size(bias.shape)
    return grad_mean, grad_var, grad_weight, grad_bias


def _combine(dy, x, mean, scale, slope, offset, relu_shift=None):
    """dy * scale + (x - mean) * slope + offset (dy gated by a ReLU with relu_shift) in a new tensor."""
    dims = _constant_dims(x.shape, mean, scale, slope, offset, relu_shift)
    if not dims:
        if relu_shift is not None:
            dy = dy * ((x - mean) * scale + relu_shift > 0)
        return torch.addcmul(offset, x - mean, slope).addcmul_(dy, scale)
    rows = _Rows.of(x.shape, dims)
    tables = [rows.table(t, x) for t in (mean, scale, slope, offset)]
    relu = None if relu_shift is None else rows.table(relu_shift, x)
    return _combine_rows(rows.view(dy), rows.view(x), *tables, relu).view(x.shape)


def _scale(inv_std, weight):
    return inv_std if weight is None else inv_std * weight


# --- Routes of whole norms: torch's fused norms where they are the better choice.

def _trailing(x, dims, weight, bias) -> bool:
    """Whether this is torch's layer_norm: the reduced dims are the last ones, and so are the
    parameters' (its fused kernel is faster than anything composed from other ops)."""
    lead = x.ndim - len(dims)
    return tuple(dims) == tuple(range(lead, x.ndim)) and all(
        t is None or (t.shape[:lead] == (1,) * lead and t.shape[lead:] == x.shape[lead:])
        for t in (weight, bias))


def _on_fused_batch_norm_device(x) -> bool:
    """Where BatchNorm-shaped statistics go to torch's fused batch norm: off the CPU, where the
    loops do not run and each torch op is a kernel launch."""
    return x.device.type != "cpu"


def _batch_norm_layout(x, dims, *tables) -> bool:
    """Statistics kept along dim 1 alone ((rows, channels), or (batch, channels, positions)), and
    the tables varying along it alone: torch's batch_norm's layout."""
    if x.ndim < 2 or len(dims) != x.ndim - 1 or 1 in dims:
        return False
    # Of x's rank, of x's size along dim 1 and 1 elsewhere: as many values as channels (checked
    # per call at inference, where a single sample's BatchNorm costs little more than the checks).
    channels = x.shape[1]
    return all(t is None or (t.ndim == x.ndim and t.shape[1] == channels and t.numel() == channels)
               for t in tables)


def _grouped_images(x, dims, weight, bias) -> bool:
    """Whether this is a GroupNorm of channels_last images with several channels a group, viewed
    as (batch, positions, groups, channels a group), on the CPU: torch's own group norm has a
    channels_last kernel that beats the loops there (with one channel a group it does not)."""
    return (x.ndim == 4 and tuple(dims) == (1, 3) and x.dtype == torch.float32 and x.device.type == "cpu"
            and x.is_contiguous()
            and all(t is None or tuple(t.shape) == (1, 1, *x.shape[2:]) for t in (weight, bias)))


def _as_images(x):
    """(batch, positions, groups, channels a group) as the channels_last (N, C, HW, 1) images it is."""
    n, length, groups, per = x.shape
    return x.reshape(n, length, 1, groups * per).permute(0, 3, 1, 2)


def _channels(t, x):
    if t is None:
        return None
    t = t.reshape(x.shape[1])
    return t if t.dtype == x.dtype else t.to(x.dtype)


def _flat(t):
    return None if t is None else t.reshape(-1)


def _variance(inv_std, epsilon):
    """The biased variance behind torch's saved 1 / sqrt(var + eps) (its fused norms save none)."""
    return (inv_std ** -2 - epsilon).clamp_min_(0.0)


def _layer_norm(x, dims, weight, bias, epsilon):
    """(y, mean, 1 / sqrt(var + eps)) over trailing `dims`: the compiled row loop for a large
    float32 CPU tensor over one axis, else torch's fused kernel."""
    shape = x.shape[x.ndim - len(dims):]
    weight, bias = (None if t is None else t.reshape(shape) for t in (weight, bias))
    if (len(dims) == 1 and x.numel() >= _LAYER_NORM_MIN_NUMEL and on_loops(x, weight, bias)
            and _layer_norm_library() is not None):
        return _layer_norm_rows(x, weight, bias, epsilon)
    weight, bias = (None if t is None else t.to(x.dtype) for t in (weight, bias))
    return torch.native_layer_norm(x, shape, weight, bias, epsilon)


def _layer_norm_rows(x, weight, bias, epsilon):
    """The compiled row loop of `_layer_norm` over the last axis (weight, bias: (C,) or None)."""
    C = x.shape[-1]
    R = x.numel() // C
    y, mean, rstd = torch.empty_like(x), x.new_empty(R), x.new_empty(R)
    c = functools.partial(_native.checked, "lamina_layer_norm_forward")
    _layer_norm_library().lamina_layer_norm_forward(
        c(x, x.shape), c(y, x.shape), c(mean, (R,)), c(rstd, (R,)), c(weight, (C,)), c(bias, (C,)), R, C,
        epsilon, torch.get_num_threads())
    stats = (*x.shape[:-1], 1)
    return y, mean.view(stats), rstd.view(stats)


def _forward(x, weight, bias, dims, epsilon, relu, group=None, derive=None, derive_inputs=()):
    """(y, mean, var, count) of x (float32 at least) standardized over `dims` with its own
    statistics, mixed by `derive` (SwitchableNorm) and synchronized over `group` where given; the
    moments (before mixing) cover `count` values each."""
    plain = group is None and derive is None
    count = math.prod(x.shape[d] for d in dims)
    if plain and _rows(x, dims, weight, bias):
        x3 = x.view(1, *x.shape)
        mean, var = _moments(x3)
        scale = _scale(torch.rsqrt(var + epsilon), weight)
        shift = x.new_zeros(mean.shape) if bias is None else bias
        return _affine_rows(x3, mean, scale, shift, relu=relu).view(x.shape), mean, var, count
    if plain and _trailing(x, dims, weight, bias):
        y, mean, inv_std = _layer_norm(x, dims, weight, bias, epsilon)
        return (y.relu_() if relu else y), mean, _variance(inv_std, epsilon), count
    if plain and _on_fused_batch_norm_device(x) and _batch_norm_layout(x, dims, weight, bias):
        y, mean, inv_std = torch.native_batch_norm(x, _channels(weight, x), _channels(bias, x), None, None,
                                                   True, 0.0, epsilon)
        atom = _stat_shape(x, dims)
        var = _variance(inv_std, epsilon).reshape(atom)
        return (y.relu_() if relu else y), mean.reshape(atom), var, count
    if plain and _grouped_images(x, dims, weight, bias):
        n, length, groups, per = x.shape
        y, mean, inv_std = torch.native_group_norm(_as_images(x), _flat(weight), _flat(bias), n, groups * per,
                                                   length, groups, epsilon)
        y = y.permute(0, 2, 3, 1).reshape(x.shape)
        atom = (n, 1, groups, 1)
        return (y.relu_() if relu else y), mean.view(atom), _variance(inv_std, epsilon).view(atom), count
    mean, var = _moments_over(x, dims)
    if group is not None:
        mean, var, count = _synchronized(mean, var, count, group)
    mixed_mean, mixed_var, _ = (mean, var, None) if derive is None else derive(mean, var, *derive_inputs)
    inv_std = torch.rsqrt(mixed_var + epsilon)
    return _affine(x, mixed_mean, _scale(inv_std, weight), bias, relu), mean, var, count


def _backward(dy, x, weight, bias, dims, epsilon, relu, atom_mean, atom_var, count, group=None, derive=None,
              derive_inputs=()):
    """Gradients (x, weight, bias, *derive_inputs) of `_forward`, given its moments and count;
    x and dy float32 at least."""
    plain = group is None and derive is None
    if plain and _rows(x, dims, weight, bias) and dy.dtype == x.dtype:
        return _rows_backward(dy.contiguous(), x, weight, bias, epsilon, relu, atom_mean, atom_var)
    mean, var, derived = (atom_mean, atom_var, None) if derive is None else derive(atom_mean, atom_var,
                                                                                  *derive_inputs)
    inv_std = torch.rsqrt(var + epsilon)
    scale = _scale(inv_std, weight)
    relu_tables = (scale, x.new_zeros(()) if bias is None else bias) if relu else ()
    trailing = plain and _trailing(x, dims, weight, bias)
    fused_batch_norm = plain and _on_fused_batch_norm_device(x) and _batch_norm_layout(x, dims, weight, bias)
    grouped_images = plain and _grouped_images(x, dims, weight, bias)
    if relu_tables and (trailing or fused_batch_norm or grouped_images):
        dy, relu_tables = dy * (_affine(x, mean, scale, bias) > 0), ()
    if trailing:
        shape = x.shape[x.ndim - len(dims):]
        w, b = (None if t is None else t.reshape(shape).to(x.dtype) for t in (weight, bias))
        dx, grad_weight, grad_bias = torch.ops.aten.native_layer_norm_backward(
            dy, x, shape, mean, inv_std, w, b, [True, weight is not None, bias is not None])
        return dx, _like(grad_weight, weight), _like(grad_bias, bias)
    if fused_batch_norm:
        dx, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            dy, x, _channels(weight, x), None, None, mean.reshape(-1), inv_std.reshape(-1), True, epsilon,
            [True, weight is not None, bias is not None])
        return dx, _like(grad_weight, weight), _like(grad_bias, bias)
    if grouped_images:
        n, length, groups, per = x.shape
        dx, grad_weight, grad_bias = torch.ops.aten.native_group_norm_backward(
            _as_images(dy.contiguous()), _as_images(x), mean.reshape(n, groups), inv_std.reshape(n, groups),
            _flat(weight), n, groups * per, length, groups, [True, weight is not None, bias is not None])
        dx = dx.permute(0, 2, 3, 1).reshape(x.shape)
        return dx, _like(grad_weight, weight), _like(grad_bias, bias)
    sums = _backward_sums(dy, x, mean, dims, (inv_std, weight, bias), relu_tables)
    grad_mean, grad_var, grad_weight, grad_bias = _affine_grads(*sums, inv_std, weight, bias)
    grad_inputs = []
    if derive is not None:
        grad_mean, grad_var, *grad_inputs = derive.backward(derived, atom_mean, atom_var, derive_inputs,
                                                            grad_mean, grad_var)
    if group is not None:  # the statistics are global: every process's loss depends on them
        packed = torch.cat([grad_mean.reshape(-1), grad_var.reshape(-1)])
        dist.all_reduce(packed, group=group)
        grad_mean, grad_var = (p.reshape(atom_mean.shape) for p in packed.chunk(2))
    # d mean / dx = 1 / n and d var / dx = 2 (x - mean) / n, fused with the direct term.
    dx = _combine(dy, x, atom_mean, scale, grad_var * (2.0 / count), grad_mean / count,
                  relu_tables[1] if relu_tables else None)
    return dx, _like(grad_weight, weight), _like(grad_bias, bias), *grad_inputs


def _rows(x, dims, weight, bias) -> bool:
    """Whether this is a BatchNorm of a (rows, channels) view on the loops, the layout every
    channels_last BatchNorm reduces to: it runs with a fixed handful of statistics-sized ops around
    the loops, which matters when the tensor is small enough for per-op costs to show."""
    return (x.ndim == 2 and len(dims) == 1 and dims[0] == 0 and x.shape[0] > 1
            and all(t is None or tuple(t.shape) == (1, x.shape[1]) for t in (weight, bias))
            and _on_statistics_loops(x, weight, bias))


def _rows_backward(dy, x, weight, bias, epsilon, relu, mean, var):
    """`_backward` of a (rows, channels) BatchNorm on the loops (see `_rows`); with `relu`, dy
    counts only where the output (recomputed inside the loops) is positive."""
    rows, channels = x.shape
    x3, dy3 = x.view(1, rows, channels), dy.view(1, rows, channels)
    inv_std = torch.rsqrt(var + epsilon)
    scale = _scale(inv_std, weight)
    relu_shift = (x.new_zeros(mean.shape) if bias is None else bias) if relu else None
    sum_dy, sum_dy_centered = _sums(dy3, x3, mean, scale if relu else None, relu_shift)
    # dx = dy * scale + (x - mean) * slope + offset, the statistics' share folded in.
    slope = scale * inv_std.square() * sum_dy_centered * (-1.0 / rows)
    offset = scale * sum_dy * (-1.0 / rows)
    dx = _combine_rows(dy3, x3, mean, scale, slope, offset, relu_shift).view(x.shape)
    grad_weight = sum_dy_centered * inv_std if weight is not None else x.new_empty(0)
    return dx, grad_weight, sum_dy if bias is not None else x.new_empty(0)


def _like(grad, param):
    """A parameter's gradient in its shape and dtype; an empty tensor for an absent parameter (an
    operator returns tensors only)."""
    if param is None:
        return torch.empty(0) if grad is None else grad.new_empty(0)
    return grad.reshape(param.shape).to(param.dtype)


def _synchronized(mean, var, count, group):
    """Statistics of the inputs of all `group`'s processes together (Chan et al.'s merge)."""
    packed = torch.cat([(mean * count).reshape(-1), mean.new_tensor([float(count)])])
    dist.all_reduce(packed, group=group)
    total = packed[-1].item()
    global_mean = packed[:-1].reshape(mean.shape) / total
    m2 = (var + (mean - global_mean) ** 2) * count
    dist.all_reduce(m2, group=group)
    return global_mean, m2 / total, total


def _stat_shape(x, dims):
    return [1 if d in dims else s for d, s in enumerate(x.shape)]


def _fresh(outputs, inputs):
    """`outputs` with any that shares memory with an input or an earlier output copied (an
    operator's outputs may not alias: a gradient can be a given tensor, summed over nothing)."""
    seen = {t.data_ptr() for t in inputs if t is not None and t.numel()}
    fresh = []
    for t in outputs:
        if t.numel() and t.data_ptr() in seen:
            t = t.clone()
        seen.add(t.data_ptr())
        fresh.append(t)
    return type(outputs)(fresh) if isinstance(outputs, tuple) else fresh


def _empty_like_param(x, t):
    """A fake gradient of a parameter (empty when it is absent)."""
    return x.new_empty(0) if t is None else torch.empty_like(t)


def _absent(t):
    """An operator's empty tensor for an absent gradient, as None."""
    return None if t.numel() == 0 else t


# --- lamina::normalize: x standardized with its own statistics over `dims`.

def _normalize_impl(x, weight, bias, dims, epsilon, relu):
    y, mean, var, _ = _forward(as_float32(x), weight, bias, dims, epsilon, relu)
    return y.to(x.dtype), mean, var


def _normalize_fake(x, weight, bias, dims, epsilon, relu):
    stats = as_float32(x).new_empty(_stat_shape(x, dims))
    return torch.empty_like(x), stats, torch.empty_like(stats)


def _normalize_backward_impl(dy, x, weight, bias, mean, var, dims, epsilon, relu):
    count = math.prod(x.shape[d] for d in dims)
    dx, grad_weight, grad_bias = _backward(as_float32(dy), as_float32(x), weight, bias, dims, epsilon, relu,
                                           mean, var, count)
    return _fresh((dx.to(x.dtype), grad_weight, grad_bias), (dy, x, weight, bias, mean, var))


def _normalize_backward_fake(dy, x, weight, bias, mean, var, dims, epsilon, relu):
    return torch.empty_like(x), *(_empty_like_param(x, t) for t in (weight, bias))


_NORMALIZE_BACKWARD = operator(
    "normalize_backward(Tensor dy, Tensor x, Tensor? weight, Tensor? bias, Tensor mean, Tensor var, "
    "int[] dims, float epsilon, bool relu) -> (Tensor, Tensor, Tensor)",
    _normalize_backward_impl, _normalize_backward_fake)


def _normalize_setup(ctx, inputs, output):
    x, weight, bias, ctx.dims, ctx.epsilon, ctx.relu = inputs
    ctx.save_for_backward(x, weight, bias, output[1], output[2])
    ctx.mark_non_differentiable(output[1], output[2])


def _normalize_grad(ctx, dy, _grad_mean, _grad_var):
    x, weight, bias, mean, var = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: a backward that is itself differentiable
        return recomputed_grads(_normalize_formula, (x, weight, bias, ctx.dims, ctx.epsilon, ctx.relu),
                                ctx.needs_input_grad, (dy, None, None))
    dx, grad_weight, grad_bias = _NORMALIZE_BACKWARD(dy, x, weight, bias, mean, var, ctx.dims, ctx.epsilon,
                                                     ctx.relu)
    return dx, _absent(grad_weight), _absent(grad_bias), None, None, None


_NORMALIZE = operator(
    "normalize(Tensor x, Tensor? weight, Tensor? bias, int[] dims, float epsilon, bool relu) "
    "-> (Tensor, Tensor, Tensor)", _normalize_impl, _normalize_fake, _normalize_setup, _normalize_grad)


@decomposes(torch.ops.lamina.normalize.default)
def _normalize_formula(x, weight, bias, dims, epsilon, relu):
    x32 = as_float32(x)
    mean = x32.mean(dims, keepdim=True)
    var = (x32 - mean).square().mean(dims, keepdim=True)
    y = (x32 - mean) * torch.rsqrt(var + epsilon)
    y = y if weight is None else y * weight
    y = y if bias is None else y + bias
    return (y.relu() if relu else y).to(x.dtype), mean, var


class _SynchronizedNormalize(torch.autograd.Function):
    """`lamina::normalize` with statistics over the inputs of all of a process group's processes
    (synchronized BatchNorm): the collective calls stay outside a registered operator."""

    @staticmethod
    def forward(ctx, x, weight, bias, dims, epsilon, relu, group):
        y, mean, var, count = _forward(as_float32(x), weight, bias, dims, epsilon, relu, group)
        ctx.save_for_backward(x, weight, bias, mean, var)
        ctx.options = (dims, epsilon, relu, count, group)
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx, dy, _grad_mean, _grad_var):
        x, weight, bias, mean, var = ctx.saved_tensors
        dims, epsilon, relu, count, group = ctx.options
        dx, grad_weight, grad_bias = _backward(as_float32(dy), as_float32(x), weight, bias, dims, epsilon,
                                               relu, mean, var, count, group)
        return dx.to(x.dtype), _absent(grad_weight), _absent(grad_bias), None, None, None, None


def normalize(x, dims, weight=None, bias=None, epsilon=1e-3, group=None, relu=False):
    """(y, mean, var): `x` standardized over `dims` with its own statistics, scaled by `weight`
    and shifted by `bias` (both broadcast against x), then max(., 0) with `relu`; the moments
    (float32 at least) keep `dims` as size-1 axes. With a process `group`, the statistics are
    those of all its processes' inputs together (synchronized BatchNorm)."""
    dims = sorted(dims)
    if group is not None:
        return _SynchronizedNormalize.apply(x, weight, bias, dims, float(epsilon), relu, group)
    return _NORMALIZE(x, weight, bias, dims, float(epsilon), relu)


# --- lamina::normalize_with: x standardized with given statistics.

def _normalize_with_impl(x, mean, var, weight, bias, epsilon):
    x32 = as_float32(x)
    axis = _varying_axis(x, mean, var, weight, bias)
    if axis is not None:
        # torch's fused batch norm with given statistics, x seen as (before, channels, after):
        # one pass, on every device.
        view = x32.reshape(math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:]))
        y = torch.native_batch_norm(view, _vector(weight, x32), _vector(bias, x32), _vector(mean, x32),
                                    _vector(var, x32), False, 0.0, epsilon)[0].reshape(x.shape)
    else:
        mean, var, weight, bias = (_full_rank(t, x.ndim) for t in (mean, var, weight, bias))
        y = _affine(x32, mean, _scale(torch.rsqrt(var + epsilon), weight), bias)
    return y if y.dtype == x.dtype else y.to(x.dtype)


def _full_rank(t, ndim):
    """A table broadcasting against a tensor of rank `ndim` with its leading 1s written out (the
    loops index every axis of a table)."""
    return t if t is None or t.ndim == ndim else t.reshape((1,) * (ndim - t.ndim) + tuple(t.shape))


def _varying_axis(x, *tables):
    """The one axis of `x` along which the tables (None: absent) vary, as BatchNorm's do: all of
    one shape, broadcasting against x (leading 1s optional), of x's size along that axis and 1
    along every other; else None (a table of one value per channel for one channel included)."""
    shape = None
    for t in tables:
        if t is not None:
            if shape is None:
                shape = t.shape
            elif t.shape != shape:
                return None
    if shape is None or len(shape) > x.ndim:
        return None
    offset, axis = x.ndim - len(shape), None
    for i, size in enumerate(shape):
        if size != 1:
            if axis is not None:
                return None
            axis = offset + i
    return axis if axis is not None and shape[axis - offset] == x.shape[axis] else None


def _vector(t, x):
    """A table of `_varying_axis` as the 1D one native_batch_norm takes, in x's dtype."""
    if t is None:
        return None
    t = t if t.ndim == 1 else t.reshape(-1)
    return t if t.dtype == x.dtype else t.to(x.dtype)


def _normalize_with_backward_impl(dy, x, mean, var, weight, bias, epsilon, statistics):
    """Gradients of x, then (with `statistics`: something besides x wants one) of mean, var,
    weight and bias."""
    given = (mean, var, weight, bias)
    mean, var, weight, bias = (_full_rank(t, x.ndim) for t in given)
    dy32 = as_float32(dy)
    inv_std = torch.rsqrt(var + epsilon)
    dx = _affine(dy32, dy32.new_zeros(()), _scale(inv_std, weight), None).to(x.dtype)
    if not statistics:
        return [dx]
    dims = [d for d in range(x.ndim) if inv_std.shape[d] == 1]
    sums = _backward_sums(dy32, as_float32(x), mean, dims, (inv_std, weight, bias), ())
    grads = _affine_grads(*sums, inv_std, weight, bias)
    return _fresh([dx, *(_like(g, t) for g, t in zip(grads, given))], (dy, x, *given))


def _normalize_with_backward_fake(dy, x, mean, var, weight, bias, epsilon, statistics):
    if not statistics:
        return [torch.empty_like(x)]
    return [torch.empty_like(x), torch.empty_like(mean), torch.empty_like(var),
            *(_empty_like_param(x, t) for t in (weight, bias))]


_NORMALIZE_WITH_BACKWARD = operator(
    "normalize_with_backward(Tensor dy, Tensor x, Tensor mean, Tensor var, Tensor? weight, Tensor? bias, "
    "float epsilon, bool statistics) -> Tensor[]",
    _normalize_with_backward_impl, _normalize_with_backward_fake)


def _normalize_with_setup(ctx, inputs, output):
    ctx.epsilon = inputs[-1]
    ctx.save_for_backward(*inputs[:-1])


def _normalize_with_grad(ctx, dy):
    x, mean, var, weight, bias = ctx.saved_tensors
    if torch.is_grad_enabled():
        return recomputed_grads(_normalize_with_formula, (x, mean, var, weight, bias, ctx.epsilon),
                                ctx.needs_input_grad, (dy,))
    statistics = any(ctx.needs_input_grad[1:5])
    grads = _NORMALIZE_WITH_BACKWARD(dy, x, mean, var, weight, bias, ctx.epsilon, statistics)
    if not statistics:
        return grads[0], None, None, None, None, None
    dx, grad_mean, grad_var, grad_weight, grad_bias = grads
    return dx, grad_mean, grad_var, _absent(grad_weight), _absent(grad_bias), None


_NORMALIZE_WITH = operator(
    "normalize_with(Tensor x, Tensor mean, Tensor var, Tensor? weight, Tensor? bias, float epsilon) "
    "-> Tensor",
    _normalize_with_impl, lambda x, *_: torch.empty_like(x), _normalize_with_setup, _normalize_with_grad)


@decomposes(torch.ops.lamina.normalize_with.default)
def _normalize_with_formula(x, mean, var, weight, bias, epsilon):
    y = (as_float32(x) - mean) * torch.rsqrt(var + epsilon)
    y = y if weight is None else y * weight
    return (y if bias is None else y + bias).to(x.dtype)


def normalize_with(x, mean, var, weight=None, bias=None, epsilon=1e-3):
    """`x` standardized with the given (broadcastable) statistics, then scaled and shifted."""
    return _NORMALIZE_WITH(x, mean, var, weight, bias, float(epsilon))


# --- lamina::switchable_normalize: SwitchableNorm's mixture of statistics.

class _Mixture:
    """SN's mixed mean and variance, (batch, 1, channels) each, from the instance statistics:
    the layer statistics (and, in training, the batch ones) are pooled from them exactly, then
    the branches are mixed with softmax weights. `backward` is its gradient, written out: the
    mixture is a dozen small tensors, and recording it for autograd costs more than the norm's
    full-size work on a typical feature map."""

    def __init__(self, using_bn: bool, batch_statistics: bool):
        self.using_bn, self.batch_statistics = using_bn, batch_statistics

    def __call__(self, mean_in, var_in, mean_logits, variance_logits, *moving):
        """(mixed mean, mixed variance, what `backward` needs)."""
        branches = [(mean_in, var_in), pooled(mean_in, var_in, [2])]
        if self.using_bn:
            branches.append(pooled(mean_in, var_in, [0]) if self.batch_statistics else tuple(moving))
        means, variances = zip(*branches)
        # The batch branch's statistics, for the layer's moving averages (not computed twice).
        self.batch_moments = branches[2] if self.using_bn and self.batch_statistics else None
        mean_weights, variance_weights = torch.softmax(mean_logits, 0), torch.softmax(variance_logits, 0)
        mixed_mean = _weighted_sum(mean_weights.unbind(), means)
        mixed_var = _weighted_sum(variance_weights.unbind(), variances)
        return mixed_mean, mixed_var, (means, variances, mean_weights, variance_weights)

    def backward(self, saved, mean_in, var_in, inputs, grad_mean, grad_var):
        """Gradients with respect to mean_in, var_in and each of `inputs`."""
        means, variances, mean_weights, variance_weights = saved
        mean_share, variance_share = mean_weights.unbind(), variance_weights.unbind()
        grad_mean_in, grad_var_in = mean_share[0] * grad_mean, variance_share[0] * grad_var
        # A pooled branch over `dim` (n values): d mean / d mean_in = 1/n, d var / d var_in = 1/n,
        # d var / d mean_in = 2 (mean_in - pooled mean) / n.
        pooled_branches = [(1, 2)] + ([(2, 0)] if self.using_bn and self.batch_statistics else [])
        for branch, dim in pooled_branches:
            share_mean = grad_mean.sum(dim, keepdim=True) * (mean_share[branch] / mean_in.shape[dim])
            share_var = grad_var.sum(dim, keepdim=True) * (variance_share[branch] / mean_in.shape[dim])
            grad_mean_in = grad_mean_in + share_mean + 2 * share_var * (mean_in - means[branch])
            grad_var_in = grad_var_in + share_var
        return (grad_mean_in, grad_var_in, _softmax_grad(mean_weights, grad_mean, means),
                _softmax_grad(variance_weights, grad_var, variances), *(None for _ in inputs[2:]))


def _weighted_sum(weights, statistics):
    total = weights[0] * statistics[0]
    for w, s in zip(weights[1:], statistics[1:]):
        total = total + w * s
    return total


def _softmax_grad(weights, grad, statistics):
    """Gradient of the logits of sum_k softmax(logits)_k * statistics_k."""
    per_branch = torch.stack([(grad * s).sum() for s in statistics])
    return weights * (per_branch - (weights * per_branch).sum())


def _sn_on_loops(x, *tensors) -> bool:
    return x.shape[1] > 0 and _on_statistics_loops(x, *tensors)


def _sn_mix_forward(mean_in, var_in, mean_logits, var_logits, moving_mean, moving_var, gamma, beta, epsilon,
                    batch_pooled):
    """The mixture on (n, c) instance statistics, compiled (see the C source): one packed tensor of
    the softmax weights (wm, wv), the (n, c) tables mean_mix, inv_std, scale, shift, and the layer
    (n,) and batch (c,) branch statistics; `_sn_tables` unpacks it."""
    n, c = mean_in.shape
    branches = mean_logits.numel()
    out = mean_in.new_empty(2 * branches + 4 * n * c + 2 * n + 2 * c)
    sizes = _sn_sizes(n, c, branches)
    k = functools.partial(_native.checked, "lamina_sn_mix_forward")
    pointers = [k(t, t.shape) for t in out.split(sizes)]
    _statistics_library().lamina_sn_mix_forward(
        k(mean_in, (n, c)), k(var_in, (n, c)), n, c, branches, int(batch_pooled),
        k(mean_logits, (branches,)), k(var_logits, (branches,)), k(moving_mean, (c,)), k(moving_var, (c,)),
        k(gamma, (c,)), k(beta, (c,)), epsilon, *pointers)
    return out


def _sn_sizes(n, c, branches):
    return [branches, branches, n * c, n * c, n * c, n * c, n, n, c, c]


def _sn_affine(gamma, beta, c):
    return tuple(None if t is None else t.reshape(1, 1, c) for t in (gamma, beta))


def _sn_moving(moving_mean, moving_var):
    return () if moving_mean is None else (moving_mean.reshape(1, 1, -1), moving_var.reshape(1, 1, -1))


def _switchable_normalize_impl(x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, epsilon,
                               using_bn):
    """(y, the batch branch's pooled mean and variance ((c,), empty when it does not pool), what
    the backward needs) of SN over x (n, positions, c); gamma, beta and the moving statistics (the
    batch branch at inference, else None) are (c,). On the loops: the kernels' full-size passes,
    as BatchNorm has, and the mixture and its gradient on the (n, c) instance statistics as two
    compiled calls (as torch ops they are some fifty small tensors)."""
    n, length, c = x.shape
    batch_pooled = using_bn and moving_mean is None
    if _sn_on_loops(x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var):
        mean_in, var_in = _moments(x)
        tables = _sn_mix_forward(mean_in, var_in, mean_logits, var_logits, moving_mean, moving_var, gamma,
                                 beta, epsilon, batch_pooled)
        sizes = _sn_sizes(n, c, mean_logits.numel())
        _, _, mean_mix, _, scale, shift, _, _, mean_bn, var_bn = tables.split(sizes)
        y = _affine_rows(x, mean_mix.view(n, c), scale.view(n, c), shift.view(n, c))
        if not batch_pooled:
            mean_bn, var_bn = x.new_empty(0), x.new_empty(0)
        saved = torch.cat([mean_in.reshape(-1), var_in.reshape(-1), tables])
        return y, mean_bn.clone(), var_bn.clone(), saved
    x32 = as_float32(x)
    mixture = _Mixture(using_bn, batch_pooled)
    inputs = (mean_logits, var_logits, *_sn_moving(moving_mean, moving_var))
    y, mean_in, var_in, _ = _forward(x32, *_sn_affine(gamma, beta, c), (1,), epsilon, False, derive=mixture,
                                     derive_inputs=inputs)
    mean_bn, var_bn = mixture.batch_moments or (x32.new_empty(0), x32.new_empty(0))
    saved = torch.cat([mean_in.reshape(-1), var_in.reshape(-1)])
    return y.to(x.dtype), mean_bn.reshape(-1), var_bn.reshape(-1), saved


def _switchable_normalize_fake(x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, epsilon,
                               using_bn):
    n, _, c = x.shape
    x32 = as_float32(x)
    pooled_size = c if using_bn and moving_mean is None else 0
    # The loops' packed tables or the instance statistics alone: the size is known at run time only.
    saved = x32.new_empty(torch.library.get_ctx().new_dynamic_size())
    return torch.empty_like(x), x32.new_empty(pooled_size), x32.new_empty(pooled_size), saved


def _switchable_normalize_backward_impl(dy, x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var,
                                        epsilon, using_bn, saved):
    """Gradients of x, gamma, beta (empty when absent) and the two logits; the route is the
    forward's (`saved` holds the loops' tables after the instance statistics when they ran)."""
    n, length, c = x.shape
    batch_pooled = using_bn and moving_mean is None
    mean_in, var_in, tables = saved.split([n * c, n * c, saved.numel() - 2 * n * c])
    if tables.numel():
        sizes = _sn_sizes(n, c, mean_logits.numel())
        wm, wv, mean_mix, inv_std, scale, _, *branch_stats = tables.split(sizes)
        mean_in, var_in, mean_mix, inv_std, scale = (t.view(n, c)
                                                     for t in (mean_in, var_in, mean_mix, inv_std, scale))
        dy = dy.float().contiguous()
        sum_dy, sum_dy_centered = _sums(dy, x, mean_mix)
        grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, slope, offset = _sn_mix_backward(
            sum_dy, sum_dy_centered, length, batch_pooled, wm, wv, mean_in, var_in, inv_std, scale,
            *branch_stats, gamma is not None, beta is not None)
        dx = _combine_rows(dy, x, mean_in, scale, slope, offset)
        return dx, _like(grad_gamma, gamma), _like(grad_beta, beta), grad_mean_logits, grad_var_logits
    mixture = _Mixture(using_bn, batch_pooled)
    stats = (mean_in.view(n, 1, c), var_in.view(n, 1, c))
    gamma_view, beta_view = _sn_affine(gamma, beta, c)
    dx, grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, *_ = _backward(
        as_float32(dy), as_float32(x), gamma_view, beta_view, (1,), epsilon, False, *stats, length,
        derive=mixture, derive_inputs=(mean_logits, var_logits, *_sn_moving(moving_mean, moving_var)))
    grads = (dx.to(x.dtype), grad_gamma.reshape(-1), grad_beta.reshape(-1), grad_mean_logits, grad_var_logits)
    return _fresh(grads, (dy, x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, saved))


def _sn_mix_backward(sum_dy, sum_dy_centered, length, batch_pooled, wm, wv, mean_in, var_in, inv_std, scale,
                     mean_ln, var_ln, mean_bn, var_bn, has_gamma, has_beta):
    """The mixture's gradient, compiled: (grad_gamma, grad_beta (None when absent), the logits'
    gradients, and the (n, c) slope and offset tables of dx = dy * scale + (x - mean_in) * slope
    + offset)."""
    n, c = sum_dy.shape
    branches = wm.numel()
    grad_gamma = sum_dy.new_empty(c) if has_gamma else None
    grad_beta = sum_dy.new_empty(c) if has_beta else None
    grad_mean_logits, grad_var_logits = sum_dy.new_empty(branches), sum_dy.new_empty(branches)
    slope, offset = sum_dy.new_empty(n, c), sum_dy.new_empty(n, c)
    work = sum_dy.new_empty(2 * n + 2 * c, dtype=torch.float64)
    k = functools.partial(_native.checked, "lamina_sn_mix_backward")
    _statistics_library().lamina_sn_mix_backward(
        k(sum_dy, (n, c)), k(sum_dy_centered, (n, c)), n, c, length, branches, int(batch_pooled),
        k(wm, (branches,)), k(wv, (branches,)), k(mean_in, (n, c)), k(var_in, (n, c)), k(inv_std, (n, c)),
        k(scale, (n, c)), k(mean_ln, (n,)), k(var_ln, (n,)), k(mean_bn, (c,)), k(var_bn, (c,)),
        k(grad_gamma, (c,)), k(grad_beta, (c,)), k(grad_mean_logits, (branches,)),
        k(grad_var_logits, (branches,)), k(slope, (n, c)), k(offset, (n, c)), work.data_ptr())
    return grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, slope, offset


def _switchable_normalize_backward_fake(dy, x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var,
                                        epsilon, using_bn, saved):
    return (torch.empty_like(x), *(_empty_like_param(x, t) for t in (gamma, beta)),
            torch.empty_like(mean_logits), torch.empty_like(var_logits))


_SWITCHABLE_NORMALIZE_BACKWARD = operator(
    "switchable_normalize_backward(Tensor dy, Tensor x, Tensor? gamma, Tensor? beta, Tensor mean_logits, "
    "Tensor var_logits, Tensor? moving_mean, Tensor? moving_var, float epsilon, bool using_bn, Tensor saved) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)", _switchable_normalize_backward_impl,
    _switchable_normalize_backward_fake)


def _switchable_setup(ctx, inputs, output):
    *tensors, ctx.epsilon, ctx.using_bn = inputs
    ctx.save_for_backward(*tensors, output[3])
    ctx.mark_non_differentiable(*output[1:])


def _switchable_grad(ctx, dy, _grad_mean_bn, _grad_var_bn, _grad_saved):
    x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, saved = ctx.saved_tensors
    if torch.is_grad_enabled():
        inputs = (x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, ctx.epsilon, ctx.using_bn)
        return recomputed_grads(_switchable_formula, inputs, ctx.needs_input_grad, (dy, None, None, None))
    dx, grad_gamma, grad_beta, grad_mean_logits, grad_var_logits = _SWITCHABLE_NORMALIZE_BACKWARD(
        dy, x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, ctx.epsilon, ctx.using_bn,
        saved)
    return (dx, _absent(grad_gamma), _absent(grad_beta), grad_mean_logits, grad_var_logits,
            None, None, None, None)


_SWITCHABLE_NORMALIZE = operator(
    "switchable_normalize(Tensor x, Tensor? gamma, Tensor? beta, Tensor mean_logits, Tensor var_logits, "
    "Tensor? moving_mean, Tensor? moving_var, float epsilon, bool using_bn) "
    "-> (Tensor, Tensor, Tensor, Tensor)",
    _switchable_normalize_impl, _switchable_normalize_fake, _switchable_setup, _switchable_grad)


@decomposes(torch.ops.lamina.switchable_normalize.default)
def _switchable_formula(x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, epsilon, using_bn):
    n, _, c = x.shape
    x32 = as_float32(x)
    mixture = _Mixture(using_bn, using_bn and moving_mean is None)
    mean_in = x32.mean(1, keepdim=True)
    var_in = (x32 - mean_in).square().mean(1, keepdim=True)
    mean, var, _ = mixture(mean_in, var_in, mean_logits, var_logits, *_sn_moving(moving_mean, moving_var))
    y = (x32 - mean) * torch.rsqrt(var + epsilon)
    gamma, beta = _sn_affine(gamma, beta, c)
    y = y if gamma is None else y * gamma
    y = y if beta is None else y + beta
    mean_bn, var_bn = mixture.batch_moments or (x32.new_empty(0), x32.new_empty(0))
    return y.to(x.dtype), mean_bn.reshape(-1), var_bn.reshape(-1), torch.cat([mean_in.reshape(-1),
                                                                              var_in.reshape(-1)])


def switchable_normalize(x, gamma, beta, mean_logits, var_logits, moving_mean, moving_var, epsilon, using_bn):
    """(y, batch mean, batch variance) of SwitchableNorm over x (n, positions, c): see
    `lamina::switchable_normalize`. The batch statistics are empty unless the batch branch pools
    the batch (using_bn, no moving statistics given)."""
    y, mean_bn, var_bn, _ = _SWITCHABLE_NORMALIZE(x, gamma, beta, mean_logits, var_logits, moving_mean,
                                                  moving_var, float(epsilon), using_bn)
    return y, mean_bn, var_bn
