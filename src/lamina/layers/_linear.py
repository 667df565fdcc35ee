"""Dense's matrix product on the CPU: oneDNN's matmul where it is faster than torch's BLAS call.

torch's `F.linear` on a float32 CPU tensor calls MKL's sgemm. On CPUs MKL does not recognise
(AMD's), MKL runs a generic AVX2 path, while oneDNN (which torch also ships, and uses for its
convolutions and LSTM) runs the CPU's widest vector unit. Measured on a 2-core AMD EPYC (Zen 5,
AVX-512): a (32, 500) x (500, 500) product 96 -> 56 us, (256, 500) x (500, 500) 600 -> 278 us;
the weight-gradient and input-gradient products of backward gain alike. oneDNN costs ~11 us per
call before any arithmetic, so small products (a single sample, a 10-unit classifier) stay
with torch: below `MIN_MULTIPLY_ADDS` torch is as fast or faster.

The route only applies where nothing would notice the difference: float32 on the CPU, oneDNN
enabled, no autocast, no graph capture (torch.compile, torch.export, ONNX, jit tracing) and no
functorch transform. In training the product is an autograd Function whose backward uses
oneDNN too, and plain differentiable torch ops when a graph of the backward is being built
(create_graph=True: gradient penalties, Hessian-vector products).
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F

from lamina import _native
from lamina.layers import _matvec_kernel

# rows x inputs x outputs from which oneDNN's fixed cost pays off (measured: (32, 500, 500) is
# 8M and 1.7x faster; (32, 64, 500) is 1M and 0.8x).
MIN_MULTIPLY_ADDS = 2_000_000


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
    """Whether `linear(x, kernel, ·)` runs oneDNN's matmul (see the module docstring)."""
    # The size rules out single samples before the slower attribute checks.
    return (_LINEAR is not None and _native.eager(autocast_lowers=True)
            and x.numel() * kernel.shape[0] >= MIN_MULTIPLY_ADDS and x.dim() >= 2
            and _native.float32_cpu(x, kernel)
            and torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available())


def linear(x, kernel, bias=None, relu=False):
    """`x @ kernel.T + bias` over the last axis of `x` (`kernel` in torch's (out, in) layout),
    then max(., 0) with `relu`."""
    if not torch.is_grad_enabled() and uses_matvec(x, kernel, bias):
        return _matvec_kernel.small_linear(x, kernel, bias, relu)
    if not uses_onednn(x, kernel):
        y = F.linear(x, kernel, bias)
        return y.relu_() if relu else y  # in place: the product's backward keeps no output
    rows = x.reshape(-1, x.shape[-1])
    if torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        y = _OneDnnLinear.apply(rows, kernel, bias)
        if relu:
            y = y.relu_()
    else:
        y = onednn_product(rows, kernel, bias, relu)
    return y.reshape(*x.shape[:-1], kernel.shape[0])


def uses_matvec(x, kernel, bias=None) -> bool:
    """Whether `linear(x, kernel, bias)` without gradients runs `_matvec_kernel`'s loop: a few
    rows (batch, features) of float32 on the CPU, eagerly (the exclusions of oneDNN's route)."""
    return (_native.eager(autocast_lowers=True) and x.dim() == 2
            and x.shape[0] <= _matvec_kernel.MAX_ROWS and _native.float32_cpu(x, kernel, bias)
            and _matvec_kernel.usable(x.shape[0], kernel))


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, kernel, bias):
        ctx.save_for_backward(rows, kernel)
        ctx.has_bias = bias is not None
        return onednn_product(rows, kernel, bias)

    @staticmethod
    def backward(ctx, grad):
        rows, kernel = ctx.saved_tensors
        grad = grad.contiguous()  # e.g. the expanded ones of a sum()'s backward
        need_rows, need_kernel, need_bias = ctx.needs_input_grad
        # create_graph=True (grad mode on here): a backward that is itself differentiable.
        onednn = not torch.is_grad_enabled()
        return (product(grad, kernel.t(), onednn) if need_rows else None,
                product(grad.t(), rows.t(), onednn) if need_kernel else None,
                grad.sum(0) if need_bias and ctx.has_bias else None)
