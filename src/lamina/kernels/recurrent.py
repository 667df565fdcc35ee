"""The LSTM's operators: compiled loops through time for float32 CPU sequences.

torch's fused LSTM on the CPU (oneDNN's RNN primitive) spends most of its time on fixed costs per
time step. Two loops replace it where they are faster, both with the input projection of every
step done first as one matrix product (x @ W_ih^T + b), and Keras' and torch's gate order i, f,
g (c), o (sigmoid gates, tanh candidate and output):

- `lamina::lstm_inference`, a few sequences without gradients (single-sample serving): on one
  sequence of 100 steps with 64 units oneDNN spends ~1.5 us per step where the step's arithmetic
  is a few hundred nanoseconds; here per step the recurrent product is 64 rows of an AXPY over
  the 4·units gate values (the recurrent kernel transposed, so the inner loop is contiguous),
  then the gates. Up to `MAX_STATE_VALUES` state values (batch x units) a step (measured, 2-core
  Zen 5: 1 x 64: 176 -> 98 us on 100 steps; 1 x 256: 371 vs 559, so wider goes to oneDNN).
- `lamina::lstm_train` and its backward `lamina::lstm_train_backward`, with a gradient wanted: the
  sequences of a batch are independent, so each of torch's threads runs its share through every
  step with no waiting between steps; every step's gates, c and h are kept for the backward pass,
  which runs the steps last to first and then forms the weight and input gradients as one matrix
  product each. Up to `MAX_UNITS` units, a multiple of 32 (above 64, `MIN_ROWS_WIDE` sequences a
  thread). The backward is differentiable (create_graph) through torch's LSTM run again.

exp is a Cody-Waite range reduction with Cephes' degree-6 polynomial (relative error ~2e-7),
branch-free so that the compiler vectorizes it; tanh(x) is 2 / (1 + exp(-2x)) - 1. `lstm()`
picks a loop or torch's fused kernel (other dtypes, devices, sizes, autocast's bfloat16).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from lamina import _native
from lamina.kernels._ops import on_loops, operator, recomputed_grads

MAX_STATE_VALUES = 128
MAX_UNITS = 128
# Above 64 units, a thread's share of the batch must be this many sequences: the weight
# gradient's (4u x u) running sum is read and written once a step, for the whole share (measured,
# 2 threads, 100 steps, 128 units: 2 sequences a thread 0.8x torch's kernel, 4 1.05x, 16 1.4x).
MIN_ROWS_WIDE = 8

GATE_MATH = _native.VARIANTS + r"""

static inline float exp_poly(float x) {
    /* e^x = 2^n * e^r, n = round(x / ln 2) (by adding 1.5 * 2^23), r = x - n ln 2 with a two-part
       ln 2, |r| <= ln(2)/2; branch-free so that the loops calling it vectorize. */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float shifted = x * 1.44269504088896341f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int bits = ((int)n + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

static inline float tanh_(float x) { return 2.0f / (1.0f + exp_poly(-2.0f * x)) - 1.0f; }
"""

_INFERENCE_SOURCE = GATE_MATH + r"""

/* One sequence: z (steps x 4u) holds the projected inputs; w_t is the recurrent kernel as
   (u, 4u); h, c (u) are the initial states on entry and the final ones on exit; out (steps x u)
   receives every step's h when not NULL. a (4u) is scratch. */
VARIANTS static void run_sequence(const float *restrict z, const float *restrict w_t, float *restrict h,
                                  float *restrict c, float *restrict out, float *restrict a,
                                  long steps, long u) {
    const long g4 = 4 * u;
    for (long t = 0; t < steps; t++) {
        const float *restrict zt = z + t * g4;
        for (long j = 0; j < g4; j++) a[j] = zt[j];
        for (long k = 0; k < u; k++) {
            const float hk = h[k];
            const float *restrict row = w_t + k * g4;
            for (long j = 0; j < g4; j++) a[j] += hk * row[j];
        }
        for (long j = 0; j < u; j++) {
            float i_ = sigmoid(a[j]), f_ = sigmoid(a[u + j]);
            float g_ = tanh_(a[2 * u + j]), o_ = sigmoid(a[3 * u + j]);
            float cn = f_ * c[j] + i_ * g_;
            c[j] = cn;
            h[j] = o_ * tanh_(cn);
        }
        if (out)
            for (long j = 0; j < u; j++) out[t * u + j] = h[j];
    }
}

void lamina_lstm_inference(float *z, const float *w_t, float *h, float *c, float *out, float *gates,
                           long batch, long steps, long u) {
    for (long b = 0; b < batch; b++)
        run_sequence(z + b * steps * 4 * u, w_t, h + b * u, c + b * u,
                     out ? out + b * steps * u : 0, gates, steps, u);
}
"""


_TRAIN_SOURCE = r"""
#include <omp.h>
#include <string.h>
""" + GATE_MATH + r"""

/* 16-lane float vectors (GCC's vector extension: one AVX-512 register, two AVX2 ones), loaded
   and stored at any float alignment; products and sums contract to FMAs. */
#pragma GCC optimize("fp-contract=fast")
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
#define LD(p) (*(const v16u *)(p))
#define ST(p, v) (*(v16u *)(p) = (v))
#define ZERO ((v16){0})

static inline float hsum(v16 v) {
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

/* C[r, c0:c0+32] (+)= sum_k A[r, k] B[k, c0:c0+32] for r < rows, with A[r, k] at
   A[r * lda + k * ak] and row k of B at B + k * ldb; N a multiple of 32. Tiles of 4 rows x 32
   columns: eight independent 16-lane sums in registers. */
VARIANTS static void gemm_rows(const float *restrict A, long lda, long ak, const float *restrict B,
                               long ldb, float *restrict C, long ldc, long rows, long K, long N,
                               int accumulate) {
    long r0 = 0;
    for (; r0 + 4 <= rows; r0 += 4) {
        const float *a0 = A + r0 * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float *o0 = C + r0 * ldc, *o1 = o0 + ldc, *o2 = o1 + ldc, *o3 = o2 + ldc;
        for (long c0 = 0; c0 < N; c0 += 32) {
            v16 c00 = ZERO, c01 = ZERO, c10 = ZERO, c11 = ZERO;
            v16 c20 = ZERO, c21 = ZERO, c30 = ZERO, c31 = ZERO;
            if (accumulate) {
                c00 = LD(o0 + c0); c01 = LD(o0 + c0 + 16); c10 = LD(o1 + c0); c11 = LD(o1 + c0 + 16);
                c20 = LD(o2 + c0); c21 = LD(o2 + c0 + 16); c30 = LD(o3 + c0); c31 = LD(o3 + c0 + 16);
            }
            for (long k = 0; k < K; k++) {
                const float *bk = B + k * ldb + c0;
                const v16 b0 = LD(bk), b1 = LD(bk + 16);
                const float x0 = a0[k * ak], x1 = a1[k * ak], x2 = a2[k * ak], x3 = a3[k * ak];
                c00 += b0 * x0; c01 += b1 * x0; c10 += b0 * x1; c11 += b1 * x1;
                c20 += b0 * x2; c21 += b1 * x2; c30 += b0 * x3; c31 += b1 * x3;
            }
            ST(o0 + c0, c00); ST(o0 + c0 + 16, c01); ST(o1 + c0, c10); ST(o1 + c0 + 16, c11);
            ST(o2 + c0, c20); ST(o2 + c0 + 16, c21); ST(o3 + c0, c30); ST(o3 + c0 + 16, c31);
        }
    }
    for (; r0 < rows; r0++) {
        const float *a0 = A + r0 * lda;
        float *o0 = C + r0 * ldc;
        for (long c0 = 0; c0 < N; c0 += 32) {
            v16 c00 = accumulate ? LD(o0 + c0) : ZERO, c01 = accumulate ? LD(o0 + c0 + 16) : ZERO;
            for (long k = 0; k < K; k++) {
                const float *bk = B + k * ldb + c0;
                const float x0 = a0[k * ak];
                c00 += LD(bk) * x0;
                c01 += LD(bk + 16) * x0;
            }
            ST(o0 + c0, c00); ST(o0 + c0 + 16, c01);
        }
    }
}

/* Sequences [b0, b1) forward, step by step. z (B, T, 4u): projected inputs; w_t (u, 4u): W_hh^T;
   h0, c0 (B, u). Writes hs, cs (B, T, u): every step's h and c; gates (B, T, 4u): the activated
   i, f, g, o. hbuf: 4u floats per sequence of the share (this step's pre-activations). */
VARIANTS static void forward_share(const float *restrict z, const float *restrict w_t,
                                   const float *restrict h0, const float *restrict c0,
                                   float *restrict hs, float *restrict cs, float *restrict gates,
                                   float *restrict pre, long b0, long b1, long T, long u) {
    const long G = 4 * u, n = b1 - b0;
    for (long t = 0; t < T; t++) {
        for (long b = 0; b < n; b++)
            memcpy(pre + b * G, z + ((b0 + b) * T + t) * G, G * sizeof(float));
        /* pre += h_{t-1} W_hh^T; h_{t-1} of sequence b0 + r at hprev + r * lda */
        const float *hprev = t ? hs + (b0 * T + t - 1) * u : h0 + b0 * u;
        gemm_rows(hprev, t ? T * u : u, 1, w_t, G, pre, G, n, u, G, 1);
        for (long b = 0; b < n; b++) {
            const long step = (b0 + b) * T + t;
            const float *restrict a = pre + b * G;
            const float *restrict cp = t ? cs + (step - 1) * u : c0 + (b0 + b) * u;
            float *restrict g = gates + step * G;
            float *restrict hn = hs + step * u, *restrict cn = cs + step * u;
            for (long j = 0; j < u; j++) {
                float i_ = sigmoid(a[j]), f_ = sigmoid(a[u + j]);
                float g_ = tanh_(a[2 * u + j]), o_ = sigmoid(a[3 * u + j]);
                float c = f_ * cp[j] + i_ * g_;
                g[j] = i_; g[u + j] = f_; g[2 * u + j] = g_; g[3 * u + j] = o_;
                cn[j] = c;
                hn[j] = o_ * tanh_(c);
            }
        }
    }
}

/* Sequences [b0, b1) backward through time. dout (B, T, u): every step's h gradient, or NULL;
   dh, dc (B, u): the final states' gradients on entry, the initial states' on exit; w (4u, u):
   W_hh; w_ih_t (F, 4u): W_ih^T; x (B, T, F). Accumulates into this share's d_hh (4u, u),
   d_ih_t (F, 4u) and d_b (4u); writes dx (B, T, F). dz: 4u floats per sequence of the share,
   hp: u floats per sequence (the previous h, gathered). */
VARIANTS static void backward_share(const float *restrict dout, const float *restrict w,
                                    const float *restrict w_ih_t, const float *restrict x,
                                    const float *restrict gates, const float *restrict hs,
                                    const float *restrict cs, const float *restrict h0,
                                    const float *restrict c0, float *restrict dh,
                                    float *restrict dc, float *restrict dx, float *restrict d_hh,
                                    float *restrict d_ih_t, float *restrict d_b,
                                    float *restrict dz, float *restrict hp, float *restrict dhn,
                                    long b0, long b1, long T, long u, long F) {
    const long G = 4 * u, n = b1 - b0;
    for (long t = T - 1; t >= 0; t--) {
        for (long b = 0; b < n; b++) {
            const long seq = b0 + b, step = seq * T + t;
            const float *restrict a = gates + step * G;
            const float *restrict c = cs + step * u;
            const float *restrict cprev = t ? cs + (step - 1) * u : c0 + seq * u;
            const float *restrict hprev = t ? hs + (step - 1) * u : h0 + seq * u;
            float *restrict dhb = dh + seq * u, *restrict dcb = dc + seq * u;
            float *restrict d = dz + b * G;
            if (dout)
                for (long j = 0; j < u; j++) dhb[j] += dout[step * u + j];
            for (long j = 0; j < u; j++) {
                float i_ = a[j], f_ = a[u + j], g_ = a[2 * u + j], o_ = a[3 * u + j];
                float tc = tanh_(c[j]);
                float dcj = dcb[j] + dhb[j] * o_ * (1.0f - tc * tc);
                d[j] = dcj * g_ * i_ * (1.0f - i_);
                d[u + j] = dcj * cprev[j] * f_ * (1.0f - f_);
                d[2 * u + j] = dcj * i_ * (1.0f - g_ * g_);
                d[3 * u + j] = dhb[j] * tc * o_ * (1.0f - o_);
                dcb[j] = dcj * f_;
            }
            memcpy(hp + b * u, hprev, u * sizeof(float));
            for (long j = 0; j < G; j++) d_b[j] += d[j];
            /* dx[step, f] = sum_j d[j] W_ih[j, f]: four features at a time, in 16-lane sums */
            long f = 0;
            for (; f + 4 <= F; f += 4) {
                const float *w0 = w_ih_t + f * G, *w1 = w0 + G, *w2 = w1 + G, *w3 = w2 + G;
                v16 s0 = ZERO, s1 = ZERO, s2 = ZERO, s3 = ZERO;
                for (long j = 0; j < G; j += 16) {
                    const v16 dj = LD(d + j);
                    s0 += dj * LD(w0 + j); s1 += dj * LD(w1 + j);
                    s2 += dj * LD(w2 + j); s3 += dj * LD(w3 + j);
                }
                dx[step * F + f] = hsum(s0); dx[step * F + f + 1] = hsum(s1);
                dx[step * F + f + 2] = hsum(s2); dx[step * F + f + 3] = hsum(s3);
            }
            for (; f < F; f++) {
                const float *wf = w_ih_t + f * G;
                v16 s0 = ZERO;
                for (long j = 0; j < G; j += 16) s0 += LD(d + j) * LD(wf + j);
                dx[step * F + f] = hsum(s0);
            }
            /* d_ih_t[f, :] += x[step, f] * d */
            for (long f = 0; f < F; f++) {
                const float xf = x[step * F + f];
                float *restrict row = d_ih_t + f * G;
                for (long j = 0; j < G; j++) row[j] += xf * d[j];
            }
        }
        /* dh_{t-1} = dz W_hh (rows: this share's sequences) */
        gemm_rows(dz, G, 1, w, u, dhn, u, n, G, u, 0);
        for (long b = 0; b < n; b++) memcpy(dh + (b0 + b) * u, dhn + b * u, u * sizeof(float));
        /* d_hh += dz^T h_prev: rows j of d_hh, k over the share's sequences */
        gemm_rows(dz, 1, G, hp, u, d_hh, u, G, n, u, 1);
    }
}

/* The batch's sequences split between threads, each running its share through every step. */
void lamina_lstm_train_forward(const float *z, const float *w_t, const float *h0, const float *c0,
                               float *hs, float *cs, float *gates, float *pre, long B, long T,
                               long u, int threads) {
#pragma omp parallel num_threads(threads)
    {
        long t = omp_get_thread_num(), n = omp_get_num_threads();
        long b0 = B * t / n, b1 = B * (t + 1) / n;
        forward_share(z, w_t, h0, c0, hs, cs, gates, pre + b0 * 4 * u, b0, b1, T, u);
    }
}

/* scratch per thread: d_hh (4u x u), d_ih_t (F x 4u), d_b (4u), then per sequence dz (4u),
   hp (u), dhn (u); the threads' weight gradients are summed into the first thread's. */
void lamina_lstm_train_backward(const float *dout, const float *w, const float *w_ih_t,
                                const float *x, const float *gates, const float *hs,
                                const float *cs, const float *h0, const float *c0, float *dh,
                                float *dc, float *dx, float *grads, float *work, long B, long T,
                                long u, long F, int threads) {
    const long G = 4 * u, per = G * u + F * G + G;
#pragma omp parallel num_threads(threads)
    {
        long t = omp_get_thread_num(), n = omp_get_num_threads();
        long b0 = B * t / n, b1 = B * (t + 1) / n;
        float *mine = grads + t * per;
        memset(mine, 0, per * sizeof(float));
        float *seqs = work + b0 * (G + 2 * u);
        backward_share(dout, w, w_ih_t, x, gates, hs, cs, h0, c0, dh, dc, dx, mine, mine + G * u,
                       mine + G * u + F * G, seqs, seqs + (b1 - b0) * G,
                       seqs + (b1 - b0) * (G + u), b0, b1, T, u, F);
#pragma omp barrier
#pragma omp for schedule(static)
        for (long i = 0; i < per; i++)
            for (long s = 1; s < n; s++) grads[i] += grads[s * per + i];
    }
}
"""


_P, _L, _I = _native.POINTER, _native.LONG, _native.INT


@functools.cache
def inference_library():
    return _native.load("lstm", _INFERENCE_SOURCE, {"lamina_lstm_inference": [_P] * 6 + [_L] * 3},
                        "LSTM inference runs torch's fused kernel")


@functools.cache
def train_library():
    signatures = {"lamina_lstm_train_forward": [_P] * 8 + [_L] * 3 + [_I],
                  "lamina_lstm_train_backward": [_P] * 14 + [_L] * 4 + [_I]}
    return _native.load("lstm_train", _TRAIN_SOURCE, signatures, "LSTM training runs torch's fused kernel")


def _threads(batch):
    return max(1, min(torch.get_num_threads(), batch))


def _torch_lstm(x, h0, c0, w_ih, w_hh, bias, train):
    params = [w_ih, w_hh] if bias is None else [w_ih, w_hh, bias, torch.zeros_like(bias)]
    seq, h, c = torch.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), params, bias is not None, 1, 0.0, train,
                           False, True)
    return seq, h[0], c[0]


def _inference_impl(x, h0, c0, w_hh, w_ih, bias):
    """The LSTM without gradients: the loop for a few float32 CPU sequences, else torch's kernel."""
    batch, steps, _ = x.shape
    units = w_hh.shape[1]
    if not (batch * units <= MAX_STATE_VALUES and on_loops(w_hh)
            and _native.float32_cpu(x, h0, c0, w_ih, bias) and inference_library() is not None):
        return _fresh_states(*_torch_lstm(x, h0, c0, w_ih, w_hh, bias, False), h0, c0)
    return _inference_loop(x, h0, c0, w_hh, w_ih, bias)


def _inference_loop(x, h0, c0, w_hh, w_ih, bias):
    batch, steps, _ = x.shape
    units = w_hh.shape[1]
    z = F.linear(x, w_ih, bias)  # every step's input projection at once, contiguous
    w_t = w_hh.t().contiguous()
    # Written in place by the loop: copies, so that the caller's states stay as they are.
    h, c = h0.clone(memory_format=torch.contiguous_format), c0.clone(memory_format=torch.contiguous_format)
    out, gates = z.new_empty(batch, steps, units), z.new_empty(4 * units)
    k = functools.partial(_native.checked, "lamina_lstm_inference")
    inference_library().lamina_lstm_inference(
        k(z, (batch, steps, 4 * units)), k(w_t, (units, 4 * units)), k(h, (batch, units)),
        k(c, (batch, units)), k(out, (batch, steps, units)), k(gates, (4 * units,)), batch, steps, units)
    return out, h, c


def _fresh_states(seq, h, c, h0, c0):
    """torch's outputs, copied where one is a given state (an operator's outputs may not alias)."""
    return seq, h.clone() if h is h0 else h, c.clone() if c is c0 else c


_INFERENCE = operator(
    "lstm_inference(Tensor x, Tensor h0, Tensor c0, Tensor w_hh, Tensor w_ih, Tensor? bias) "
    "-> (Tensor, Tensor, Tensor)", _inference_impl,
    lambda x, h0, c0, w_hh, w_ih, bias: (x.new_empty(*x.shape[:2], w_hh.shape[1]), torch.empty_like(h0),
                                         torch.empty_like(c0)))


def _train_impl(x_in, w_ih, w_hh, bias, h0_in, c0_in):
    batch, steps, features = x_in.shape
    units = w_hh.shape[1]
    x = x_in.contiguous()
    rows = x.view(batch * steps, features)
    z = rows @ w_ih.t() if bias is None else torch.addmm(bias, rows, w_ih.t())
    h0, c0 = h0_in.contiguous(), c0_in.contiguous()
    hs, cs = x.new_empty(batch, steps, units), x.new_empty(batch, steps, units)
    gates = x.new_empty(batch, steps, 4 * units)
    pre = x.new_empty(batch, 4 * units)
    w_t = w_hh.t().contiguous()
    k = functools.partial(_native.checked, "lamina_lstm_train_forward")
    train_library().lamina_lstm_train_forward(
        k(z, (batch * steps, 4 * units)), k(w_t, (units, 4 * units)), k(h0, (batch, units)),
        k(c0, (batch, units)),
        k(hs, hs.shape), k(cs, cs.shape), k(gates, gates.shape), k(pre, pre.shape), batch, steps, units,
        _threads(batch))
    return hs, hs[:, -1].clone(), cs[:, -1].clone(), cs, gates


def _train_fake(x, w_ih, w_hh, bias, h0, c0):
    batch, steps, _ = x.shape
    units = w_hh.shape[1]
    return (x.new_empty(batch, steps, units), torch.empty_like(h0), torch.empty_like(c0),
            x.new_empty(batch, steps, units), x.new_empty(batch, steps, 4 * units))


def _train_backward_impl(d_seq, d_h, d_c, x, w_ih, w_hh, has_bias, h0, c0, hs, cs, gates):
    x, h0, c0 = x.contiguous(), h0.contiguous(), c0.contiguous()
    batch, steps, units = hs.shape
    features, g4 = x.shape[2], 4 * units
    dh, dc = d_h.contiguous().clone(), d_c.contiguous().clone()
    d_seq = d_seq.contiguous()
    threads = _threads(batch)
    per = g4 * units + features * g4 + g4
    grads = x.new_empty(threads, per)
    work = x.new_empty(batch, g4 + 2 * units)
    dx = x.new_empty(batch, steps, features)
    w, w_ih_t = w_hh.contiguous(), w_ih.t().contiguous()
    k = functools.partial(_native.checked, "lamina_lstm_train_backward")
    train_library().lamina_lstm_train_backward(
        k(d_seq, hs.shape), k(w, (g4, units)), k(w_ih_t, (features, g4)), k(x, x.shape),
        k(gates, gates.shape),
        k(hs, hs.shape), k(cs, cs.shape), k(h0, (batch, units)), k(c0, (batch, units)), k(dh, (batch, units)),
        k(dc, (batch, units)), k(dx, dx.shape), k(grads, grads.shape), k(work, work.shape), batch, steps,
        units,
        features, threads)
    total = grads[0]
    d_hh = total[:g4 * units].view(g4, units).clone()
    d_ih = total[g4 * units:g4 * units + features * g4].view(features, g4).t().contiguous()
    d_bias = total[g4 * units + features * g4:].clone() if has_bias else x.new_empty(0)
    return dx, d_ih, d_hh, d_bias, dh, dc


_TRAIN_BACKWARD = operator(
    "lstm_train_backward(Tensor d_seq, Tensor d_h, Tensor d_c, Tensor x, Tensor w_ih, Tensor w_hh, "
    "bool has_bias, Tensor h0, Tensor c0, Tensor hs, Tensor cs, Tensor gates) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
    _train_backward_impl,
    lambda d_seq, d_h, d_c, x, w_ih, w_hh, has_bias, h0, c0, hs, cs, gates: (
        torch.empty_like(x), torch.empty_like(w_ih), torch.empty_like(w_hh),
        x.new_empty(w_hh.shape[0] if has_bias else 0), torch.empty_like(h0), torch.empty_like(c0)))


def _train_setup(ctx, inputs, output):
    x, w_ih, w_hh, bias, h0, c0 = inputs
    hs, _, _, cs, gates = output
    ctx.save_for_backward(x, w_ih, w_hh, bias, h0, c0, hs, cs, gates)
    ctx.mark_non_differentiable(cs, gates)


def _train_grad(ctx, d_seq, d_h, d_c, _d_cs, _d_gates):
    x, w_ih, w_hh, bias, h0, c0, hs, cs, gates = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: a backward that is itself differentiable
        return recomputed_grads(_lstm_formula, (x, w_ih, w_hh, bias, h0, c0), ctx.needs_input_grad,
                                (d_seq, d_h, d_c))
    computed = _TRAIN_BACKWARD(d_seq, d_h, d_c, x, w_ih, w_hh, bias is not None, h0, c0, hs, cs, gates)
    computed = (*computed[:3], computed[3] if bias is not None else None, *computed[4:])
    return tuple(g if need else None for g, need in zip(computed, ctx.needs_input_grad))


_TRAIN = operator(
    "lstm_train(Tensor x, Tensor w_ih, Tensor w_hh, Tensor? bias, Tensor h0, Tensor c0) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)", _train_impl, _train_fake, _train_setup, _train_grad)


def lstm(x, weights, states):
    """(every step's h (B, T, u), [h_T, c_T]) of a batch-first LSTM over `x` (B, T, features);
    `weights`: W_ih (4u, features), W_hh (4u, u) and the bias (4u) or None, in torch's layout and
    gate order; `states`: [h0, c0] (B, u). A loop where one applies (see the module docstring),
    else torch's fused kernel."""
    w_ih, w_hh, bias = weights
    h0, c0 = states
    tensors = [x, h0, c0, w_ih, w_hh, bias]
    # Autocast lowers torch's LSTM to bfloat16, a functorch transform's tensors have no memory for
    # the loops, and an exported graph (ONNX) must hold torch's LSTM with its shape constraints
    # (the recurrence unrolls over a fixed length): all three are torch's kernel's.
    if (torch.is_autocast_enabled(x.device.type) or torch._C._are_functorch_transforms_active()
            or torch.compiler.is_exporting()):
        seq, h, c = _torch_lstm(x, h0, c0, w_ih, w_hh, bias, torch.is_grad_enabled())
        return seq, [h, c]
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
        seq, h, c = _INFERENCE(x, h0, c0, w_hh, w_ih, bias)
        return seq, [h, c]
    units = w_hh.shape[1]
    if (_native.float32_cpu(*tensors) and units % 32 == 0 and units <= MAX_UNITS
            and (units <= 64 or -(-x.shape[0] // _threads(x.shape[0])) >= MIN_ROWS_WIDE)
            and train_library() is not None):
        seq, h, c, _, _ = _TRAIN(x, w_ih, w_hh, bias, h0, c0)
        return seq, [h, c]
    # train=True: cuDNN has no backward for its inference mode.
    seq, h, c = _torch_lstm(x, h0, c0, w_ih, w_hh, bias, True)
    return seq, [h, c]


def _lstm_formula(x, w_ih, w_hh, bias, h0, c0):
    """(every step's h, h_T, c_T): torch's LSTM on the same inputs (a create_graph backward
    differentiates it)."""
    return _torch_lstm(x, h0, c0, w_ih, w_hh, bias, True)
