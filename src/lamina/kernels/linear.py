"""The Dense family's operator: `lamina::linear`, x @ kernel.T (+ bias) (then max(., 0)).

Inside it, one place picks among three ways to compute the product:
- a compiled matrix-vector loop for a few rows (at most `MAX_ROWS`) of float32 CPU input against a
  large kernel: every weight is read once per row, so the time is the time to stream the kernel.
  torch's `F.linear` hands it to MKL, which on CPUs it does not recognise (AMD's) runs a generic
  path on one thread; this loop reads four weight rows at a time against each input row, sixteen
  lanes wide (AVX-512 where the CPU has it), and splits the output units between torch's threads.
  Measured on a 2-core AMD EPYC (Zen 5), one call from Python included: (1, 500) x (500, 500)
  14.0 -> 7.3 us, (4, 500) x (500, 500) 39.7 -> 14.7 us. Below `MIN_WEIGHTS_PER_ROW` weights per
  input row (+1) the call's fixed cost outweighs that. Its sum runs in float32 in sixteen partial
  sums, so the last bits differ from MKL's order, as two BLAS libraries' do.
- oneDNN's matmul (which torch ships) for float32 CPU products of at least `MIN_MULTIPLY_ADDS`:
  on AVX-512 CPUs MKL does not recognise it runs the widest vector unit (a (32, 500) x (500, 500)
  product 96 -> 56 us; backward's products alike); it costs ~11 us per call before any
  arithmetic, so small products stay with torch.
- torch's `F.linear` for everything else (other dtypes and devices, autocast's bfloat16).

Both of lamina's routes apply only where torch's BLAS is MKL on a CPU it does not tune for
(`blas_is_generic`: not Intel's). On Intel CPUs MKL's own kernels beat both: measured on a 2-core
Xeon (Sapphire Rapids class, one thread), F.linear (1, 500) x (500, 500) 25 us against the loop's
32 and oneDNN's 48; (32, 500) x (500, 500) 141 against oneDNN's 170; the backward's products
103-112 against 138-187; the bench MLP's training step 13,249 samples/s on MKL against 10,611.
The backward is `lamina::linear_backward` (oneDNN's products where the forward used them), or
differentiable torch ops when a graph of the backward is being built (create_graph=True).
`dense_chain` runs several Dense products in one operator call (the Sequential inference plan).
"""

from __future__ import annotations

import ctypes
import functools
import platform

import torch
import torch.nn.functional as F

from lamina import _native
from lamina.kernels._ops import decomposes, on_loops, operator, recomputed_grads

MAX_ROWS = 16
MIN_WEIGHTS_PER_ROW = 16384  # a (64, 500) kernel at 1 row: 3.5 us either way
# rows x inputs x outputs from which oneDNN's fixed cost pays off (measured: (32, 500, 500) is
# 8M and 1.7x faster; (32, 64, 500) is 1M and 0.8x).
MIN_MULTIPLY_ADDS = 2_000_000

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
    return _native.load("matvec", _SOURCE, _SIGNATURES, "Dense runs torch's F.linear")


@functools.cache
def blas_is_generic() -> bool:
    """Whether torch's float32 products run on a BLAS without kernels tuned for this CPU: MKL on a
    CPU that is not Intel's (it then runs a generic path), or a build without MKL. Only there do
    the matrix-vector loop and oneDNN's matmul beat `F.linear` (see the module docstring)."""
    if not torch.backends.mkl.is_available():
        return True
    return _cpu_vendor() != "GenuineIntel"


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "GenuineIntel" if "GenuineIntel" in platform.processor() else ""


def _onednn_linear():
    # Measured on x86-64 only (where torch's oneDNN has its JIT kernels); elsewhere F.linear.
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_LINEAR = _onednn_linear()


def onednn_product(a, b_t, bias=None, relu=False):
    """a @ b_t.T (+ bias; then max(., 0) with `relu`, as oneDNN's post-op) through oneDNN, b_t
    laid out as a linear layer's (out, in) weight."""
    return _LINEAR(a, b_t, bias, "relu" if relu else "none", [], "")


def product(a, b_t, onednn):
    """a @ b_t.T: oneDNN's, or torch's (differentiable) matmul."""
    return onednn_product(a, b_t) if onednn else a @ b_t.t()


def uses_onednn(x, kernel) -> bool:
    """Whether the product of x and kernel goes to oneDNN (the size rules out single samples
    before the slower attribute checks)."""
    return (blas_is_generic() and _LINEAR is not None and x.numel() * kernel.shape[0] >= MIN_MULTIPLY_ADDS
            and x.dim() >= 2 and _native.float32_cpu(x, kernel)
            and torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available())


def uses_matvec(x, kernel, bias=None) -> bool:
    """Whether the product runs the compiled matrix-vector loop: a few rows (batch, features) of
    float32 contiguous CPU tensors against a large kernel."""
    return matvec_pays(x, (kernel,)) and on_loops(x, kernel, bias)


def matvec_pays(x, kernels) -> bool:
    """Whether the loop (one Dense product, or `dense_chain`'s several) is worth calling for the
    rows of a 2D `x` against `kernels`, on this machine (the BLAS first: on Intel's MKL that
    settles it)."""
    return (blas_is_generic() and x.dim() == 2 and x.shape[0] <= MAX_ROWS
            and sum(k.numel() for k in kernels) >= MIN_WEIGHTS_PER_ROW * (x.shape[0] + 1)
            and library() is not None)


def small_linear(rows, kernel, bias, relu):
    """rows (M, K) @ kernel (N, K)^T (+ bias) (then max(., 0)), on the compiled loop."""
    rows = rows.contiguous()
    bias = None if bias is None else bias.contiguous()
    m, k = rows.shape
    n = kernel.shape[0]
    out = rows.new_empty(m, n)
    c = functools.partial(_native.checked, "lamina_small_linear")
    library().lamina_small_linear(c(rows, (m, k)), m, k, c(kernel, (n, k)), c(bias, (n,)), c(out, (m, n)), n,
                                  int(relu), torch.get_num_threads())
    return out


def _linear_impl(x, kernel, bias, relu):
    if uses_matvec(x, kernel, bias):
        return small_linear(x, kernel, bias, relu)
    if uses_onednn(x, kernel):
        rows = x.reshape(-1, x.shape[-1])
        return onednn_product(rows, kernel, bias, relu).reshape(*x.shape[:-1], kernel.shape[0])
    y = F.linear(x, kernel, bias)
    return y.relu_() if relu else y


def _linear_fake(x, kernel, bias, relu):
    return x.new_empty(*x.shape[:-1], kernel.shape[0])


def _linear_backward_impl(grad, x, kernel, output, has_bias, relu, need_x, need_kernel):
    """Gradients of x, kernel and bias (each empty where not wanted); with `relu`, grad counts
    only where the output is positive."""
    grad = grad.contiguous()  # e.g. the expanded ones of a sum()'s backward
    if relu:
        grad = grad * (output > 0)
    rows, grads = x.reshape(-1, x.shape[-1]), grad.reshape(-1, kernel.shape[0])
    onednn = uses_onednn(x, kernel) and grads.dtype == torch.float32
    grad_x = product(grads, kernel.t(), onednn).reshape(x.shape) if need_x else x.new_empty(0)
    grad_kernel = product(grads.t(), rows.t(), onednn) if need_kernel else x.new_empty(0)
    return grad_x, grad_kernel, grads.sum(0) if has_bias else grads.new_empty(0)


def _linear_backward_fake(grad, x, kernel, output, has_bias, relu, need_x, need_kernel):
    return (torch.empty_like(x) if need_x else x.new_empty(0),
            torch.empty_like(kernel) if need_kernel else x.new_empty(0),
            x.new_empty(kernel.shape[0] if has_bias else 0))


_LINEAR_BACKWARD = operator(
    "linear_backward(Tensor grad, Tensor x, Tensor kernel, Tensor output, bool has_bias, bool relu, "
    "bool need_x, bool need_kernel) -> (Tensor, Tensor, Tensor)",
    _linear_backward_impl, _linear_backward_fake)


def _linear_setup(ctx, inputs, output):
    x, kernel, bias, ctx.relu = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, kernel, output if ctx.relu else None, bias)


def _linear_grad(ctx, grad):
    x, kernel, output, bias = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: a backward that is itself differentiable
        return recomputed_grads(_linear_formula, (x, kernel, bias, ctx.relu), ctx.needs_input_grad, (grad,))
    output = output if output is not None else x.new_empty(0)
    need_x, need_kernel, need_bias, _ = ctx.needs_input_grad
    grad_x, grad_kernel, grad_bias = _LINEAR_BACKWARD(grad, x, kernel, output, ctx.has_bias and need_bias,
                                                      ctx.relu, need_x, need_kernel)
    return (grad_x if need_x else None, grad_kernel if need_kernel else None,
            grad_bias if ctx.has_bias and need_bias else None, None)


_LINEAR_OP = operator("linear(Tensor x, Tensor kernel, Tensor? bias, bool relu) -> Tensor", _linear_impl,
                      _linear_fake, _linear_setup, _linear_grad)
@decomposes(torch.ops.lamina.linear.default)
def _linear_formula(x, kernel, bias, relu):
    y = F.linear(x, kernel, bias)
    return y.relu() if relu else y


def linear(x, kernel, bias=None, relu=False):
    """`x @ kernel.T + bias` over the last axis of `x` (`kernel` in torch's (out, in) layout),
    then max(., 0) with `relu`. Under autocast the product runs in autocast's lower precision, as
    torch's own linear does."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, kernel, bias = (None if t is None else t.to(dtype) for t in (x, kernel, bias))
    return _LINEAR_OP(x, kernel, bias, relu)


def _dense_chain_impl(x, kernels, biases, relus):
    if matvec_pays(x, kernels) and on_loops(x, *kernels, *biases):
        return chain_loop(x, kernels, biases, relus)
    for kernel, bias, relu in zip(kernels, biases, relus):
        x = _linear_impl(x, kernel, bias, relu)
    return x


def chain_loop(x, kernels, biases, relus):
    """The chain in one compiled call: one parallel region instead of one per product."""
    m = x.shape[0]
    count = len(kernels)
    dims = [x.shape[1]] + [k.shape[0] for k in kernels]
    for kernel, bias, (k, n) in zip(kernels, biases, zip(dims, dims[1:])):
        _native.checked("lamina_dense_chain", kernel, (n, k))
        _native.checked("lamina_dense_chain", bias, (n,))
    scratch = x.new_empty(2 * m * max(dims[1:]))
    out = x.new_empty(m, dims[-1])
    library().lamina_dense_chain(
        _native.checked("lamina_dense_chain", x, (m, dims[0])), m, count,
        (ctypes.c_long * (count + 1))(*dims),
        (ctypes.c_void_p * count)(*[k.data_ptr() for k in kernels]),
        (ctypes.c_void_p * count)(*[None if b is None else b.data_ptr() for b in biases]),
        (ctypes.c_int * count)(*relus), scratch.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out


_DENSE_CHAIN = operator(
    "dense_chain(Tensor x, Tensor[] kernels, Tensor?[] biases, int[] relus) -> Tensor", _dense_chain_impl,
    lambda x, kernels, biases, relus: x.new_empty(*x.shape[:-1], kernels[-1].shape[0]))


def dense_chain(x, kernels, biases, relus):
    """Several Dense products in a row (the Sequential inference plan's chain of Dense layers),
    without gradients: x (..., K0) through kernels (K1, K0), (K2, K1), ... each with its bias (or
    None) and then max(., 0) where `relus` says. One operator call from Python for the whole
    chain; inside it, a few float32 rows go to the compiled loop where `matvec_pays`, anything
    else through `lamina::linear`'s own choice, product after product."""
    return _DENSE_CHAIN(x, list(kernels), list(biases), [int(r) for r in relus])
