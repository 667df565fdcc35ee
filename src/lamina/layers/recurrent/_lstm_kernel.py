"""LSTM inference on a few sequences as a compiled CPU loop.

torch's fused LSTM on the CPU (oneDNN's RNN primitive) is built for batches: on one sequence of
100 steps with 64 units it spends ~1.5 us per step, mostly fixed costs, where the step's
arithmetic (a 64 x 256 matrix-vector product and 256 gate activations) is a few hundred
nanoseconds on one core. Here the input projection of every step is one matrix product done by
the layer first (x @ W_ih^T + b, all steps at once), and the recurrence runs in C: per step, the
recurrent product as 64 rows of an AXPY over the 4·units gate values (the recurrent kernel
transposed to (units, 4·units), so the inner loop is contiguous), then the gates. Keras' and
torch's gate order i, f, g (c), o; sigmoid gates, tanh candidate and output.

exp is a Cody-Waite range reduction with Cephes' degree-6 polynomial (relative error ~2e-7,
within an ulp or two of libm), branch-free so that the compiler vectorizes it; tanh(x) is
2 / (1 + exp(-2x)) - 1. Tested against torch's LSTM to 1e-6.

Used only where nothing else is needed: float32 on the CPU, no gradient, the default
activations, no mask, no dropout, and at most `MAX_STATE_VALUES` state values (batch x units) per
step (larger ones are matrix products, where oneDNN is the better tool). Without a C compiler
torch's kernel runs.
"""

from __future__ import annotations

import functools

import torch

from lamina import _native

# Where the loop is faster than oneDNN's kernel (measured, 2-core Zen 5): batch x units up to 128
# (1 x 64: 176 -> 98 us on 100 steps; 2 x 64: 250 -> 162; 1 x 128: 180 -> 171). Wider states are
# matrix products that oneDNN does better (1 x 256: 371 vs 559 us).
MAX_STATE_VALUES = 128

# The gate functions, shared with the training loop (_lstm_train_kernel.py).
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

_SOURCE = GATE_MATH + r"""

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

_SIGNATURES = {
    "lamina_lstm_inference": [_native.POINTER] * 6 + [_native.LONG] * 3,
}


@functools.cache
def library():
    return _native.load("lstm", _SOURCE, _SIGNATURES, "LSTM inference runs torch's fused kernel")


def usable(x: torch.Tensor, kernel: torch.Tensor) -> bool:
    """A small float32 CPU batch with no gradient wanted, eagerly (`kernel`: (4·units, features))."""
    return (not torch.is_grad_enabled() and _native.eager(autocast_lowers=True)
            and _native.float32_cpu(x, kernel)
            and x.shape[0] * kernel.shape[0] // 4 <= MAX_STATE_VALUES
            and library() is not None)


def lstm(z, h, c, recurrent_kernel, return_sequences):
    """(outputs, [h, c]) of an LSTM over the projected inputs `z` (batch, steps, 4u: x @ kernel
    + bias, every step at once) from states `h`, `c` (batch, units): outputs is every step's h
    (batch, steps, units) with `return_sequences`, else the last step's h as (batch, 1, units).
    `recurrent_kernel` (4u, u) in torch's layout."""
    batch, steps, _ = z.shape
    units = recurrent_kernel.shape[1]
    z = z.contiguous()  # read step by step by the loop (a fresh matmul result already is)
    w_t = recurrent_kernel.t().contiguous()
    # Written in place by the loop: copies, so that the caller's states stay as they are.
    h = h.clone(memory_format=torch.contiguous_format)
    c = c.clone(memory_format=torch.contiguous_format)
    out = z.new_empty(batch, steps, units) if return_sequences else None
    gates = z.new_empty(4 * units)
    library().lamina_lstm_inference(*_native.pointers(z, w_t, h, c, out, gates),
                                    batch, steps, units)
    return (out if return_sequences else h.unsqueeze(1)), [h, c]
