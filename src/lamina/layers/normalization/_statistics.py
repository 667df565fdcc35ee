"""The statistics core shared by every normalization layer.

A norm is a choice of which input axes its statistics keep (BatchNorm: channels; InstanceNorm:
batch and channels; LayerNorm: all but the normalized axes; GroupNorm: batch and channel groups),
which axes its scale and offset span, and how the statistics are mixed and tracked. This module
turns that choice into fast tensor work:

- `plan()` views the input so that adjacent axes with the same role are merged: a channels_last
  BatchNorm input of any rank becomes a contiguous (rows, channels) matrix, an InstanceNorm input
  (batch, positions, channels). Reductions then run over contiguous memory.
- `normalize()` standardizes with the input's own statistics over the reduced dims, optionally
  `derive`d first (SwitchableNormalization mixes instance statistics into layer and batch
  ones); `normalize_with()` with given statistics (moving averages, masked statistics).
  Their backward passes are derived by hand: the gradient reaching x through the statistics
  and through the output is one fused expression, dy * scale + (x - mean) * slope + offset with
  per-statistic tables, so a forward+backward reads the tensor a handful of times instead of
  the twenty passes autograd would record. A `derive` brings the gradient of its mixture.
- Four primitives do the full-size work: moments, the affine map, the backward sums and the
  backward combination. For float32 CPU tensors they run as compiled loops (`_kernels`),
  elsewhere as eager torch ops; the mathematics is the same. A BatchNorm of a (rows, channels)
  view on the loops has its own autograd function (`_RowsBatchNorm`) with a minimal fixed cost.
- torch's fused kernels take over where they are the better choice: LayerNorm over trailing
  axes (`layer_norm`), and BatchNorm-shaped statistics off the CPU or, with moving statistics,
  whenever nothing needs a gradient (`batch_norm`); Keras' biased variance is kept.

Statistics are computed in float32 for float16/bfloat16 inputs and the output keeps the input's
dtype. Variances are biased (divided by the count, as Keras keeps them), computed in two passes
(mean, then squared deviations) so a large mean does not cancel a small variance.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch
from torch import distributed as dist

from lamina.layers.normalization import _kernels

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
    dims = [d for d in dims if t.shape[d] > 1]
    if not dims:
        return t
    dims = sorted(dims, key=lambda d: -t.shape[d])
    out = t.sum(dims[0], keepdim=True)
    return out.sum(tuple(dims[1:]), keepdim=True) if len(dims) > 1 else out


_workspace = threading.local()


def _scratch(like: torch.Tensor) -> torch.Tensor:
    """A buffer shaped like `like` for a temporary that never leaves the call using it (eager
    path). Fresh CPU memory costs page faults that take longer than the arithmetic; one buffer
    per thread and dtype, grown to the largest input seen, avoids them. Other devices have a
    caching allocator already."""
    if like.device.type != "cpu":
        return torch.empty_like(like)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(like.dtype)
    if buffer is None or buffer.numel() < like.numel():
        with torch.inference_mode(False):  # an inference-mode tensor could not be written later
            buffer = buffers[like.dtype] = torch.empty(like.numel(), dtype=like.dtype)
    return buffer[: like.numel()].view(like.shape)


@dataclass(frozen=True)
class _Rows:
    """The kernels' reading of a view reduced over some dims: (A, L, T) with L the longest reduced
    dim `axis`, A the product of the dims before it and T of those after."""

    axis: int
    A: int
    L: int
    T: int

    @classmethod
    def of(cls, shape, dims):
        axis = max(dims, key=lambda d: shape[d])
        return cls(axis, math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))

    def table(self, t, shape):
        """A statistics-sized tensor broadcast to one float32 (A, T) row per group, for the kernels."""
        atom = list(shape)
        atom[self.axis] = 1
        if t.dtype != torch.float32 or list(t.shape) != atom or not t.is_contiguous():
            t = t.float().expand(atom).contiguous()
        return t.view(self.A, self.T)


def _constant_dims(shape, *tables):
    """The dims along which every table (None, a scalar, or of the same rank as `shape`) has size 1."""
    return [d for d in range(len(shape)) if all(t is None or t.ndim == 0 or t.shape[d] == 1 for t in tables)]


def _moments(x, dims):
    """Mean and biased variance over `dims` (kept as size-1 axes), and how many values each covers."""
    count = math.prod(x.shape[d] for d in dims)
    if _kernels.usable(x):
        rows = _Rows.of(x.shape, dims)
        mean, var = _kernels.moments(x, rows.A, rows.L, rows.T)
        atom = list(x.shape)
        atom[rows.axis] = 1
        mean, var = mean.reshape(atom), var.reshape(atom)
        rest = [d for d in dims if d != rows.axis and x.shape[d] > 1]
        return (*pooled(mean, var, rest), count) if rest else (mean, var, count)
    mean = _sum(x, dims) / count
    squares = torch.sub(x, mean, out=_scratch(x)).square_()
    return mean, _sum(squares, dims) / count, count


def pooled(mean, var, dims):
    """Mean and variance of the union of equal-sized groups with the given statistics (the law
    of total variance): exact, and free of the cancellation of E[x^2] - E[x]^2."""
    pooled_mean = mean.mean(dims, keepdim=True)
    return pooled_mean, var.mean(dims, keepdim=True) + (mean - pooled_mean).square().mean(dims, keepdim=True)


def _synchronized(mean, var, count, group):
    """Statistics of the inputs of all `group`'s processes together (Chan et al.'s merge)."""
    packed = torch.cat([(mean * count).reshape(-1), mean.new_tensor([float(count)])])
    dist.all_reduce(packed, group=group)
    total = packed[-1].item()
    global_mean = packed[:-1].reshape(mean.shape) / total
    m2 = (var + (mean - global_mean) ** 2) * count
    dist.all_reduce(m2, group=group)
    return global_mean, m2 / total, total


def _affine(x, mean, scale, shift):
    """(x - mean) * scale + shift into a new tensor; the three broadcast against x."""
    dims = _constant_dims(x.shape, mean, scale, shift)
    if _kernels.usable(x) and dims:
        rows = _Rows.of(x.shape, dims)
        shift = torch.zeros(()) if shift is None else shift
        return _kernels.affine(x, rows.A, rows.L, rows.T,
                               *(rows.table(t, x.shape) for t in (mean, scale, shift)))
    centered = x - mean
    return centered.mul_(scale) if shift is None else torch.addcmul(shift, centered, scale, out=centered)


def _backward_sums(dy, x, mean, dims, *params):
    """Sums of dy and of dy * (x - mean): over the kernels' reduced dim when they apply (the
    rest is summed by `_affine_grads`), else the full products."""
    if _kernels.usable(x, dy):
        rows = _Rows.of(x.shape, dims)
        if rows.axis in _constant_dims(x.shape, mean, *params):
            sum_dy, sum_dy_centered = _kernels.sums(dy, x, rows.A, rows.L, rows.T, rows.table(mean, x.shape))
            atom = list(x.shape)
            atom[rows.axis] = 1
            return sum_dy.reshape(atom), sum_dy_centered.reshape(atom)
    return dy, torch.sub(x, mean, out=_scratch(x)).mul_(dy)


def _affine_grads(sum_dy, sum_dy_centered, inv_std, weight, bias):
    """Gradients of y = (x - mean) * inv_std * weight + bias with respect to mean, var (through
    inv_std), weight and bias, from dy and dy * (x - mean), full or already partly summed.

    The sums first run over the dims where neither statistics nor parameters vary (the long rows
    of a BatchNorm), so everything after that works on statistics-sized tensors.
    """
    params = [t for t in (weight, bias) if t is not None]
    inner = [d for d in range(sum_dy.ndim)
             if inv_std.shape[d] == 1 and all(t.shape[d] == 1 for t in params)]
    sum_dy, sum_dy_centered = _sum(sum_dy, inner), _sum(sum_dy_centered, inner)
    scaled_dy = sum_dy if weight is None else sum_dy * weight
    scaled_dy_centered = sum_dy_centered if weight is None else sum_dy_centered * weight
    grad_mean = -scaled_dy.sum_to_size(inv_std.shape) * inv_std
    grad_var = scaled_dy_centered.sum_to_size(inv_std.shape) * (-0.5 * inv_std**3)
    grad_weight = None if weight is None else (sum_dy_centered * inv_std).sum_to_size(weight.shape)
    grad_bias = None if bias is None else sum_dy.sum_to_size(bias.shape)
    return grad_mean, grad_var, grad_weight, grad_bias


def _combine(dy, x, mean, scale, slope, offset):
    """dy * scale + (x - mean) * slope + offset into a new tensor (all but dy, x statistics-sized)."""
    dims = _constant_dims(x.shape, mean, scale, slope, offset)
    if _kernels.usable(x, dy) and dims:
        rows = _Rows.of(x.shape, dims)
        return _kernels.combine(dy, x, rows.A, rows.L, rows.T,
                                *(rows.table(t, x.shape) for t in (mean, scale, slope, offset)))
    dx = torch.addcmul(offset, torch.sub(x, mean, out=_scratch(x)), slope)
    return dx.addcmul_(dy, scale)


def _scale(inv_std, weight):
    return inv_std if weight is None else inv_std * weight


class _Normalize(torch.autograd.Function):
    """(x - mean) / sqrt(var + eps) * weight + bias where (mean, var) = derive(moments of x over
    `dims`, *derive_inputs): the input's own statistics, or a differentiable mixture of them.

    Returns (y, moments mean, moments variance); the moments are not differentiable outputs.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, dims, epsilon, group, derive, *derive_inputs):
        x32 = as_float32(x)
        atom_mean, atom_var, count = _moments(x32, dims)
        if group is not None:
            atom_mean, atom_var, count = _synchronized(atom_mean, atom_var, count, group)
        mean, var, ctx.derived = ((atom_mean, atom_var, None) if derive is None
                                  else derive(atom_mean, atom_var, *derive_inputs))
        inv_std = torch.rsqrt(var + epsilon)
        y = _affine(x32, mean, _scale(inv_std, weight), bias)
        ctx.save_for_backward(x, weight, bias, atom_mean, atom_var, mean, inv_std, *derive_inputs)
        ctx.dims, ctx.count, ctx.group, ctx.derive = dims, count, group, derive
        ctx.mark_non_differentiable(atom_mean, atom_var)
        return y.to(x.dtype), atom_mean, atom_var

    @staticmethod
    def backward(ctx, dy, _grad_atom_mean, _grad_atom_var):
        x, weight, bias, atom_mean, atom_var, mean, inv_std, *derive_inputs = ctx.saved_tensors
        x32, dy = as_float32(x), as_float32(dy)
        sums = _backward_sums(dy, x32, mean, ctx.dims, inv_std, weight, bias)
        grad_mean, grad_var, grad_weight, grad_bias = _affine_grads(*sums, inv_std, weight, bias)
        grad_inputs = [None] * len(derive_inputs)
        if ctx.derive is not None:
            grad_mean, grad_var, *grad_inputs = ctx.derive.backward(ctx.derived, atom_mean, atom_var,
                                                                    derive_inputs, grad_mean, grad_var)
        if ctx.group is not None:
            # The statistics are global: every process's loss depends on them.
            packed = torch.cat([grad_mean.reshape(-1), grad_var.reshape(-1)])
            dist.all_reduce(packed, group=ctx.group)
            grad_mean, grad_var = (p.reshape(atom_mean.shape) for p in packed.chunk(2))
        # d mean / dx = 1 / n and d var / dx = 2 (x - mean) / n, fused with the direct term.
        dx = _combine(dy, x32, atom_mean, _scale(inv_std, weight), grad_var * (2.0 / ctx.count),
                      grad_mean / ctx.count)
        return (dx.to(x.dtype), grad_weight, grad_bias, None, None, None, None, *grad_inputs)


def _plain_rows(x, dims, weight, bias) -> bool:
    """Whether this is a BatchNorm of a (rows, channels) float32 CPU view, the layout every
    channels_last BatchNorm reduces to: then `_RowsBatchNorm` runs it with the least overhead."""
    return (x.ndim == 2 and dims == (0,) and x.shape[0] > 1
            and _kernels.usable(x, *(t for t in (weight, bias) if t is not None))
            and all(t is None or tuple(t.shape) == (1, x.shape[1]) for t in (weight, bias)))


class _RowsBatchNorm(torch.autograd.Function):
    """`_Normalize` specialised to a BatchNorm of (rows, channels) on the kernels: the same
    mathematics with a fixed handful of statistics-sized ops around three kernel calls, which
    matters when the tensor is small enough for per-op costs to show. With `relu`, the output is
    max(y, 0) in the same pass, and the backward masks dy where y <= 0 inside its own two passes
    (y recomputed from x), so a following ReLU costs no pass of its own either way."""

    @staticmethod
    def forward(ctx, x, weight, bias, epsilon, relu=False):
        rows, channels = x.shape
        mean, var = _kernels.moments(x, 1, rows, channels)
        inv_std = torch.rsqrt(var + epsilon)
        scale = inv_std if weight is None else inv_std * weight
        shift = torch.zeros(1, channels) if bias is None else bias
        y = _kernels.affine(x, 1, rows, channels, mean, scale, shift, relu=relu)
        ctx.save_for_backward(x, mean, inv_std, scale, shift.detach() if relu else None)
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, dy, _grad_mean, _grad_var):
        x, mean, inv_std, scale, relu_shift = ctx.saved_tensors
        rows, channels = x.shape
        dy = dy.contiguous()
        relu_scale = None if relu_shift is None else scale.detach().contiguous()
        sum_dy, sum_dy_centered = _kernels.sums(dy, x, 1, rows, channels, mean, relu_scale, relu_shift)
        # dx = dy * scale + (x - mean) * slope + offset, the statistics' share folded in.
        slope = scale * inv_std.square() * sum_dy_centered * (-1.0 / rows)
        offset = scale * sum_dy * (-1.0 / rows)
        dx = _kernels.combine(dy, x, 1, rows, channels, mean, scale, slope, offset, relu_shift)
        grad_weight = sum_dy_centered * inv_std if ctx.has_weight else None
        grad_bias = sum_dy if ctx.has_bias else None
        return dx, grad_weight, grad_bias, None, None


class _NormalizeWith(torch.autograd.Function):
    """(x - mean) / sqrt(var + eps) * weight + bias with given statistics (moving averages, or
    masked statistics that still carry gradients)."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, epsilon):
        inv_std = torch.rsqrt(var + epsilon)
        y = _affine(as_float32(x), mean, _scale(inv_std, weight), bias)
        ctx.save_for_backward(x, mean, inv_std, weight, bias)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, mean, inv_std, weight, bias = ctx.saved_tensors
        dy = as_float32(dy)
        dx = _affine(dy, torch.zeros(()), _scale(inv_std, weight), None).to(x.dtype) \
            if ctx.needs_input_grad[0] else None
        if not any(ctx.needs_input_grad[1:]):
            return dx, None, None, None, None, None
        dims = [d for d in range(x.ndim) if inv_std.shape[d] == 1]
        sums = _backward_sums(dy, as_float32(x), mean, dims, inv_std, weight, bias)
        grad_mean, grad_var, grad_weight, grad_bias = _affine_grads(*sums, inv_std, weight, bias)
        return dx, grad_mean, grad_var, grad_weight, grad_bias, None


def normalize(x, dims, weight=None, bias=None, epsilon=1e-3, group=None, derive=None, derive_inputs=(),
              moments=True, relu=False):
    """Standardize `x` over `dims` with its own statistics, then scale and shift.

    Returns (y, mean, var): the moments of x over `dims` (kept as size-1 axes, float32 at least);
    with `moments=False` they may be None (a caller that only wants y saves their last step).
    `weight` and `bias` broadcast against `x`. With a process `group`, the moments are those of
    the inputs of all its processes together (synchronized BatchNorm). With `derive`, y uses the
    first two results of `derive(mean, var, *derive_inputs)` instead (a mixture of statistics);
    its third is passed back as `derive.backward(saved, mean, var, derive_inputs, grad_mixed_mean,
    grad_mixed_var)`, which returns the gradients with respect to mean, var and each derive input.
    With `relu`, y is max(y, 0): fused into the (rows, channels) BatchNorm's own passes, a
    separate op elsewhere.
    """
    dims = tuple(dims)
    plain = derive is None and group is None
    if plain and _trailing(x, dims, weight, bias):
        y, mean, var = _layer_norm(x, dims, weight, bias, epsilon, moments)
    elif plain and _native_batch_norm_applies(x, dims, weight, bias):
        y, mean, var = _batch_norm(x, weight, bias, epsilon)
    elif plain and _plain_rows(x, dims, weight, bias):  # the ReLU inside its own passes
        return _RowsBatchNorm.apply(x, weight, bias, float(epsilon), relu)
    elif group is None and torch.compiler.is_compiling():
        y, mean, var = _traced_normalize(x, dims, weight, bias, epsilon, derive, derive_inputs)
    else:
        y, mean, var = _Normalize.apply(x, weight, bias, dims, float(epsilon), group, derive, *derive_inputs)
    return (torch.relu(y) if relu else y), mean, var


def _trailing(x, dims, weight, bias) -> bool:
    """Whether this is torch's layer_norm: the reduced dims are the last ones, and so are the
    parameters' (its fused kernel is faster than anything composed from other ops)."""
    lead = x.ndim - len(dims)
    return dims == tuple(range(lead, x.ndim)) and all(
        t is None or (t.shape[:lead] == (1,) * lead and t.shape[lead:] == x.shape[lead:])
        for t in (weight, bias))


def _layer_norm(x, dims, weight, bias, epsilon, moments=True):
    shape = x.shape[x.ndim - len(dims):]
    flat = [None if t is None else t.reshape(shape) for t in (weight, bias)]
    y, mean, inv_std = torch.native_layer_norm(as_float32(x), shape, *flat, epsilon)
    if not moments:
        return y.to(x.dtype), None, None
    return y.to(x.dtype), mean.detach(), _variance(inv_std, epsilon)


def _variance(inv_std, epsilon):
    """The biased variance behind torch's saved 1 / sqrt(var + eps) (its fused norms save no
    variance; Keras keeps the biased one)."""
    return (inv_std.detach() ** -2 - epsilon).clamp_min_(0.0)


def on_native_batch_norm_device(x) -> bool:
    """Where BatchNorm-shaped statistics go to torch's fused batch norm: off the CPU, where
    lamina's kernels do not run and each eager op is a kernel launch."""
    return x.device.type != "cpu"


def _native_batch_norm_applies(x, dims, weight, bias) -> bool:
    """Whether this is torch's batch_norm on a device without lamina's kernels: see
    `_batch_norm_layout`. There one fused kernel (cuDNN's on CUDA) replaces the handful of
    launches the eager path takes."""
    return on_native_batch_norm_device(x) and _batch_norm_layout(x, dims, weight, bias)


def _batch_norm_layout(x, dims, weight, bias, *stats) -> bool:
    """Statistics kept along dim 1 alone ((rows, channels), or (batch, channels, positions)), the
    parameters and any given statistics varying along it alone: torch's batch_norm's layout."""
    if x.ndim < 2 or torch.compiler.is_compiling():
        return False
    kept = tuple(d for d in range(x.ndim) if d not in dims)
    return kept == (1,) and all(t is None or (t.ndim == x.ndim and all(t.shape[d] == 1 for d in dims))
                                for t in (weight, bias, *stats))


def _channels(t, size):
    return None if t is None else t.reshape(size)


def _batch_norm(x, weight, bias, epsilon):
    """torch's fused batch norm in training mode; returns (y, mean, biased variance) as `normalize`
    does (torch's own running variance would be the unbiased one)."""
    size = x.shape[1]
    y, mean, inv_std = torch.native_batch_norm(as_float32(x), _channels(weight, size), _channels(bias, size),
                                               None, None, True, 0.0, epsilon)
    atom = [1] * x.ndim
    atom[1] = size
    return y.to(x.dtype), mean.detach().reshape(atom), _variance(inv_std, epsilon).reshape(atom)


def normalize_with(x, mean, var, weight=None, bias=None, epsilon=1e-3):
    """Standardize `x` with the given (broadcastable) statistics, then scale and shift."""
    if torch.compiler.is_compiling():
        return _traced_affine(x, mean, var, weight, bias, epsilon)
    # Moving statistics (no gradient to them): torch's fused batch norm on accelerators, and on
    # the CPU too when nothing needs a gradient (predict, evaluate; one op, no lamina overhead).
    inference = not (torch.is_grad_enabled()
                     and any(t is not None and t.requires_grad for t in (x, weight, bias)))
    if (not (mean.requires_grad or var.requires_grad) and (inference or on_native_batch_norm_device(x))
            and _batch_norm_layout(x, [d for d in range(x.ndim) if d != 1], weight, bias, mean, var)):
        size = x.shape[1]
        y = torch.native_batch_norm(as_float32(x), _channels(weight, size), _channels(bias, size),
                                    _channels(mean, size).float(), _channels(var, size).float(),
                                    False, 0.0, epsilon)[0]
        return y.to(x.dtype)
    return _NormalizeWith.apply(x, mean, var, weight, bias, float(epsilon))


# Graph capture (torch.export, hence ONNX export, and torch.compile) runs on tensors without
# memory, which the compiled loops cannot read: the same mathematics is recorded as plain ops.
def _traced_normalize(x, dims, weight, bias, epsilon, derive, derive_inputs):
    x32 = as_float32(x)
    mean = x32.mean(dims, keepdim=True)
    var = (x32 - mean).square().mean(dims, keepdim=True)
    mixed = (mean, var) if derive is None else derive(mean, var, *derive_inputs)[:2]
    return _traced_affine(x, *mixed, weight, bias, epsilon), mean, var


def _traced_affine(x, mean, var, weight, bias, epsilon):
    y = (as_float32(x) - mean) * torch.rsqrt(var + epsilon)
    y = y if weight is None else y * weight
    return (y if bias is None else y + bias).to(x.dtype)


def masked_moments(x, dims, mask):
    """Mean and biased variance over `dims` counting only where `mask` (broadcastable) is true,
    as Keras computes them for masked BatchNormalization."""
    x = as_float32(x)
    weight = mask.to(x.dtype).expand_as(x)
    count = weight.sum(dims, keepdim=True) + _MASK_EPSILON
    mean = (x * weight).sum(dims, keepdim=True) / count
    var = (((x - mean) * weight) ** 2).sum(dims, keepdim=True) / count
    return mean, var


def update_moving(movings, batch_values, momentum: float) -> None:
    """Keras' moving averages: moving = momentum * moving + (1 - momentum) * batch_value, for each
    pair (one launch per operation for all of them, which an accelerator notices)."""
    with torch.no_grad():
        values = [b.reshape(m.shape).to(m.dtype) for m, b in zip(movings, batch_values)]
        torch._foreach_lerp_(movings, values, 1.0 - momentum)  # moving + (1 - momentum) * (value - moving)


def process_group(synchronized: bool):
    """The default process group when statistics are to be synchronized across processes."""
    if synchronized and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None
