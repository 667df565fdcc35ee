"""The statistics core shared by every normalization layer.

A norm is a choice of which input axes its statistics keep (BatchNorm: channels; InstanceNorm:
batch and channels; LayerNorm: all but the normalized axes; GroupNorm: batch and channel groups),
which axes its scale and offset span, and how the statistics are mixed and tracked. This module
turns that choice into fast tensor work:

- `plan()` views the input so that adjacent axes with the same role are merged: a channels_last
  BatchNorm input of any rank becomes a contiguous (rows, channels) matrix, an InstanceNorm input
  (batch, positions, channels). Reductions then run over contiguous memory.
- `normalize()` standardizes with the batch's own statistics; `normalize_with()` with given ones
  (moving statistics, or statistics mixed from several sources that still carry gradients);
  `moments()` returns differentiable statistics for mixing. Their backward passes are derived by
  hand and reuse the saved statistics, so a forward+backward touches the tensor a few times
  instead of the dozen passes autograd would record.

Statistics are computed in float32 for float16/bfloat16 inputs and the output keeps the input's
dtype. Variances are biased (divided by the count, as Keras keeps them), computed in two passes
(mean, then squared deviations) so a large mean does not cancel a small variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributed as dist

# Keras' backend epsilon: keeps a masked mean finite when a mask selects nothing.
_MASK_EPSILON = 1e-7


@dataclass(frozen=True)
class Plan:
    """How a norm sees an input: a compact view, the reduced dims, and the shapes of its scale
    (or offset) and of its statistics in that view."""

    view: tuple
    reduce: tuple
    param_shape: tuple
    stat_shape: tuple

    @property
    def count(self) -> int:
        """How many values each statistic summarizes."""
        return math.prod(self.view[d] for d in self.reduce)


def plan(shape, stat_axes, param_axes) -> Plan:
    """The compact view of an input of `shape` for statistics that keep `stat_axes` and
    parameters that span `param_axes` (both sets of non-negative axis indices).

    Size-1 axes are dropped and neighbours with the same two roles are merged, so a reshape of a
    contiguous input is free and every reduction runs over as few, as long, axes as possible.
    """
    groups: list[list] = []
    for axis, size in enumerate(shape):
        if size == 1:
            continue
        role = (axis in stat_axes, axis in param_axes)
        if groups and groups[-1][1] == role:
            groups[-1][0] *= size
        else:
            groups.append([size, role])
    if not any(not keeps for _, (keeps, _) in groups):
        # Nothing left to reduce (one value per statistic, e.g. a batch of one for BatchNorm):
        # a size-1 reduced axis keeps the statistics well defined (mean = x, variance = 0).
        groups.append([1, (False, False)])
    view = tuple(size for size, _ in groups)
    return Plan(
        view=view,
        reduce=tuple(i for i, (_, (keeps, _)) in enumerate(groups) if not keeps),
        param_shape=tuple(size if spans else 1 for size, (_, spans) in groups),
        stat_shape=tuple(size if keeps else 1 for size, (keeps, _) in groups),
    )


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are upcast: their range and precision are too small for statistics."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _sum(t: torch.Tensor, dims) -> torch.Tensor:
    """Sum over `dims`, keeping them. The longest dim goes first: one pass over the big tensor,
    then small remainders (a single multi-dim reduction over strided axes is several times slower)."""
    if not dims:
        return t
    dims = sorted(dims, key=lambda d: -t.shape[d])
    out = t.sum(dims[0], keepdim=True)
    return out.sum(tuple(dims[1:]), keepdim=True) if len(dims) > 1 else out


def _moments_forward(x, dims, group=None):
    """Mean, biased variance and the centred input; summed across `group`'s processes if given."""
    count = math.prod(x.shape[d] for d in dims)
    total = _sum(x, dims)
    if group is not None:
        count_t = torch.tensor([float(count)], dtype=total.dtype, device=total.device)
        packed = torch.cat([total.reshape(-1), count_t])
        dist.all_reduce(packed, group=group)
        total, count = packed[:-1].reshape(total.shape), packed[-1].item()
    mean = total / count
    centered = x - mean
    squares = _sum(centered * centered, dims)
    if group is not None:
        dist.all_reduce(squares, group=group)
    return mean, squares / count, centered, count


def _through_moments(centered, grad_mean, grad_var, count):
    """Gradient reaching the input through its mean and variance:
    d mean / dx = 1 / n and d var / dx = 2 (x - mean) / n. Overwrites `centered`."""
    return torch.addcmul(grad_mean / count, centered, grad_var * (2.0 / count), out=centered)


def _affine_grads(dy, centered, inv_std, weight, bias):
    """Gradients of y = centered * inv_std * weight + bias with respect to the statistics, the
    weight and the bias, from sums of dy and dy*centered.

    The sums first run over the dims where neither statistics nor parameters vary (the long rows
    of a BatchNorm), so everything after that works on statistics-sized tensors.
    """
    params = [t for t in (weight, bias) if t is not None]
    inner = [d for d in range(dy.ndim)
             if inv_std.shape[d] == 1 and dy.shape[d] > 1 and all(t.shape[d] == 1 for t in params)]
    sum_dy = _sum(dy, inner)
    sum_dy_centered = _sum(dy * centered, inner)
    scaled_dy = sum_dy if weight is None else sum_dy * weight
    scaled_dy_centered = sum_dy_centered if weight is None else sum_dy_centered * weight
    grad_mean = -scaled_dy.sum_to_size(inv_std.shape) * inv_std
    grad_var = scaled_dy_centered.sum_to_size(inv_std.shape) * (-0.5 * inv_std**3)
    grad_weight = None if weight is None else (sum_dy_centered * inv_std).sum_to_size(weight.shape)
    grad_bias = None if bias is None else sum_dy.sum_to_size(bias.shape)
    return grad_mean, grad_var, grad_weight, grad_bias


def _standardize(centered, inv_std, weight, bias):
    """centered * inv_std * weight + bias, written over `centered` (fresh memory is slow to touch)."""
    scale = inv_std if weight is None else inv_std * weight
    if bias is None:
        return centered.mul_(scale)
    return torch.addcmul(bias, centered, scale, out=centered)


class _BatchNormalize(torch.autograd.Function):
    """(x - mean) / sqrt(var + eps) * weight + bias with the input's own statistics over `dims`."""

    @staticmethod
    def forward(ctx, x, weight, bias, dims, epsilon, group):
        x32 = as_float32(x)
        mean, var, centered, count = _moments_forward(x32, dims, group)
        inv_std = torch.rsqrt(var + epsilon)
        y = _standardize(centered, inv_std, weight, bias)
        ctx.save_for_backward(x, mean, inv_std, weight, bias)
        ctx.count, ctx.group = count, group
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx, dy, _grad_mean, _grad_var):
        x, mean, inv_std, weight, bias = ctx.saved_tensors
        dy = as_float32(dy)
        centered = as_float32(x) - mean
        grad_mean, grad_var, grad_weight, grad_bias = _affine_grads(dy, centered, inv_std, weight, bias)
        if ctx.group is not None:
            # The mean and variance are global: every process's loss depends on them.
            packed = torch.cat([grad_mean.reshape(-1), grad_var.reshape(-1)])
            dist.all_reduce(packed, group=ctx.group)
            grad_mean, grad_var = (p.reshape(inv_std.shape) for p in packed.chunk(2))
        scale = inv_std if weight is None else inv_std * weight
        dx = _through_moments(centered, grad_mean, grad_var, ctx.count).addcmul_(dy, scale)
        return dx.to(x.dtype), grad_weight, grad_bias, None, None, None


class _NormalizeWith(torch.autograd.Function):
    """(x - mean) / sqrt(var + eps) * weight + bias with given statistics, which may be
    differentiable functions of x themselves (SwitchableNormalization's mixture)."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, epsilon):
        inv_std = torch.rsqrt(var + epsilon)
        y = _standardize(as_float32(x) - mean, inv_std, weight, bias)
        ctx.save_for_backward(x, mean, inv_std, weight, bias)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, mean, inv_std, weight, bias = ctx.saved_tensors
        dy = as_float32(dy)
        scale = inv_std if weight is None else inv_std * weight
        dx = (dy * scale).to(x.dtype) if ctx.needs_input_grad[0] else None
        if not any(ctx.needs_input_grad[1:]):
            return dx, None, None, None, None, None
        centered = as_float32(x) - mean
        grad_mean, grad_var, grad_weight, grad_bias = _affine_grads(dy, centered, inv_std, weight, bias)
        return dx, grad_mean, grad_var, grad_weight, grad_bias, None


class _Moments(torch.autograd.Function):
    """Mean and biased variance over `dims`, differentiable, for statistics that get mixed."""

    @staticmethod
    def forward(ctx, x, dims):
        mean, var, _, count = _moments_forward(as_float32(x), dims)
        ctx.save_for_backward(x, mean)
        ctx.count = count
        return mean, var

    @staticmethod
    def backward(ctx, grad_mean, grad_var):
        x, mean = ctx.saved_tensors
        grad_mean = torch.zeros_like(mean) if grad_mean is None else grad_mean
        grad_var = torch.zeros_like(mean) if grad_var is None else grad_var
        dx = _through_moments(as_float32(x) - mean, grad_mean, grad_var, ctx.count)
        return dx.to(x.dtype), None


def normalize(x, dims, weight=None, bias=None, epsilon=1e-3, group=None):
    """Standardize `x` over `dims` with its own statistics, then scale and shift.

    Returns (y, mean, var); the statistics keep `dims` as size-1 axes and are float32 at least.
    `weight` and `bias` broadcast against `x`. With a process `group`, the statistics are those
    of the inputs of all its processes together (synchronized BatchNorm).
    """
    return _BatchNormalize.apply(x, weight, bias, tuple(dims), float(epsilon), group)


def normalize_with(x, mean, var, weight=None, bias=None, epsilon=1e-3):
    """Standardize `x` with the given (broadcastable) statistics, then scale and shift."""
    return _NormalizeWith.apply(x, mean, var, weight, bias, float(epsilon))


def moments(x, dims):
    """Differentiable mean and biased variance of `x` over `dims` (kept as size-1 axes)."""
    return _Moments.apply(x, tuple(dims))


def masked_moments(x, dims, mask):
    """Mean and biased variance over `dims` counting only where `mask` (broadcastable) is true,
    as Keras computes them for masked BatchNormalization."""
    x = as_float32(x)
    weight = mask.to(x.dtype).expand_as(x)
    count = weight.sum(dims, keepdim=True) + _MASK_EPSILON
    mean = (x * weight).sum(dims, keepdim=True) / count
    var = (((x - mean) * weight) ** 2).sum(dims, keepdim=True) / count
    return mean, var


def update_moving(moving: torch.Tensor, batch_value: torch.Tensor, momentum: float) -> None:
    """Keras' moving average: moving = momentum * moving + (1 - momentum) * batch_value."""
    with torch.no_grad():
        moving.mul_(momentum).add_(batch_value.reshape(moving.shape).to(moving.dtype) * (1.0 - momentum))


def process_group(synchronized: bool):
    """The default process group when statistics are to be synchronized across processes."""
    if synchronized and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None
