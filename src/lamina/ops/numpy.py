"""numpy-like ops (Keras' `keras.ops.numpy`), as thin functions over torch.

Arguments may be torch tensors, numpy arrays or Python numbers; results are torch tensors. The
dtypes follow Keras' rules where torch's differ: reductions and index results of int32 inputs stay
int32 (torch widens to int64), and math that needs a fraction (mean, sqrt, exp, divide, …) turns
integers into float32.
"""

from __future__ import annotations

import builtins

import numpy as np
import torch

from lamina.ops._dispatch import op
from lamina.ops.core import convert_to_tensor, standardize_dtype

_t = convert_to_tensor


def _float(x):
    x = _t(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.float32)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _index_dtype(t):
    """Keras returns int32 indices and counts where torch returns int64."""
    return t.to(torch.int32)


def _accumulated(x, result):
    """Sums and products keep an int32 input's dtype (torch widens them to int64); bool and
    small ints become int32, as in Keras."""
    if x.dtype in (torch.bool, torch.int8, torch.int16, torch.int32, torch.uint8):
        return result.to(torch.int32)
    return result


def _operands(x1, x2):
    """Tensors for a binary op; a Python number stays a number, so it takes the tensor's dtype
    as Keras' weak types do."""
    scalar = (int, float, bool)
    if isinstance(x1, scalar) and isinstance(x2, scalar):
        return _t(x1), _t(x2)
    return (x1 if isinstance(x1, scalar) else _t(x1)), (x2 if isinstance(x2, scalar) else _t(x2))


def _tensors(x1, x2):
    """Both operands as tensors, a Python number taking the other's dtype (for torch functions
    that take no numbers)."""
    x1, x2 = _operands(x1, x2)
    if not isinstance(x1, torch.Tensor):
        x1 = torch.tensor(x1, dtype=_weak_dtype(x1, x2), device=x2.device)
    if not isinstance(x2, torch.Tensor):
        x2 = torch.tensor(x2, dtype=_weak_dtype(x2, x1), device=x1.device)
    return x1, x2


def _weak_dtype(number, tensor):
    if isinstance(number, float) and not (tensor.is_floating_point() or tensor.is_complex()):
        return torch.float32
    return tensor.dtype


def _elementwise(name, torch_fn, to_float=False, doc=None):
    """An op applying `torch_fn` to one tensor; `to_float` turns integer inputs into float32."""

    def fn(x):
        return torch_fn(_float(x) if to_float else _t(x))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc or f"Element-wise {name}, as numpy's."
    return op(fn)


def _binary(name, torch_fn, to_float=False, tensors=False):
    """An op applying `torch_fn` to two operands with Keras' promotion of Python numbers."""

    def fn(x1, x2):
        x1, x2 = (_tensors if tensors or to_float else _operands)(x1, x2)
        if to_float:
            x1, x2 = _float(x1), _float(x2)
        return torch_fn(x1, x2)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Element-wise {name} of two tensors (broadcast), as numpy's."
    return op(fn)


# ----------------------------------------------------------------------------- element-wise
abs = _elementwise("abs", torch.abs)
absolute = _elementwise("absolute", torch.abs)
negative = _elementwise("negative", torch.neg)
sign = _elementwise("sign", torch.sign)
square = _elementwise("square", torch.square)
sqrt = _elementwise("sqrt", torch.sqrt, to_float=True)
cbrt = _elementwise("cbrt", lambda x: torch.sign(x) * torch.abs(x) ** (1 / 3), to_float=True)
exp = _elementwise("exp", torch.exp, to_float=True)
exp2 = _elementwise("exp2", torch.exp2, to_float=True)
expm1 = _elementwise("expm1", torch.expm1, to_float=True)
log = _elementwise("log", torch.log, to_float=True)
log1p = _elementwise("log1p", torch.log1p, to_float=True)
log2 = _elementwise("log2", torch.log2, to_float=True)
log10 = _elementwise("log10", torch.log10, to_float=True)
sin = _elementwise("sin", torch.sin, to_float=True)
cos = _elementwise("cos", torch.cos, to_float=True)
tan = _elementwise("tan", torch.tan, to_float=True)
arcsin = _elementwise("arcsin", torch.asin, to_float=True)
arccos = _elementwise("arccos", torch.acos, to_float=True)
arctan = _elementwise("arctan", torch.atan, to_float=True)
sinh = _elementwise("sinh", torch.sinh, to_float=True)
cosh = _elementwise("cosh", torch.cosh, to_float=True)
tanh = _elementwise("tanh", torch.tanh, to_float=True)
arcsinh = _elementwise("arcsinh", torch.asinh, to_float=True)
arccosh = _elementwise("arccosh", torch.acosh, to_float=True)
arctanh = _elementwise("arctanh", torch.atanh, to_float=True)
reciprocal = _elementwise("reciprocal", torch.reciprocal, to_float=True)
floor = _elementwise("floor", lambda x: torch.floor(x) if x.is_floating_point() else x, to_float=True)
ceil = _elementwise("ceil", lambda x: torch.ceil(x) if x.is_floating_point() else x, to_float=True)
trunc = _elementwise("trunc", lambda x: torch.trunc(x) if x.is_floating_point() else x)
isnan = _elementwise("isnan", torch.isnan)
isinf = _elementwise("isinf", torch.isinf)
isfinite = _elementwise("isfinite", torch.isfinite)
logical_not = _elementwise("logical_not", torch.logical_not)
fabs = _elementwise("fabs", torch.abs, to_float=True)
deg2rad = _elementwise("deg2rad", torch.deg2rad, to_float=True)
rad2deg = _elementwise("rad2deg", torch.rad2deg, to_float=True)
signbit = _elementwise("signbit", torch.signbit)
isneginf = _elementwise("isneginf", torch.isneginf)
isposinf = _elementwise("isposinf", torch.isposinf)
fliplr = _elementwise("fliplr", torch.fliplr)
flipud = _elementwise("flipud", torch.flipud)
copy = _elementwise("copy", torch.clone)

add = _binary("add", torch.add)
subtract = _binary("subtract", torch.sub)
multiply = _binary("multiply", torch.mul)
divide = _binary("divide", torch.true_divide, to_float=True)
true_divide = _binary("true_divide", torch.true_divide, to_float=True)
floor_divide = _binary("floor_divide", torch.floor_divide)
mod = _binary("mod", torch.remainder)
power = _binary("power", torch.pow)
maximum = _binary("maximum", torch.maximum, tensors=True)
minimum = _binary("minimum", torch.minimum, tensors=True)
arctan2 = _binary("arctan2", torch.atan2, to_float=True)
equal = _binary("equal", torch.eq)
not_equal = _binary("not_equal", torch.ne)
greater = _binary("greater", torch.gt)
greater_equal = _binary("greater_equal", torch.ge)
less = _binary("less", torch.lt)
less_equal = _binary("less_equal", torch.le)
logical_and = _binary("logical_and", torch.logical_and, tensors=True)
logical_or = _binary("logical_or", torch.logical_or, tensors=True)
logical_xor = _binary("logical_xor", torch.logical_xor, tensors=True)
hypot = _binary("hypot", torch.hypot, to_float=True)
fmod = _binary("fmod", torch.fmod, tensors=True)
fmax = _binary("fmax", torch.fmax, tensors=True)
fmin = _binary("fmin", torch.fmin, tensors=True)
logaddexp = _binary("logaddexp", torch.logaddexp, to_float=True)
logaddexp2 = _binary("logaddexp2", torch.logaddexp2, to_float=True)
heaviside = _binary("heaviside", torch.heaviside, to_float=True)


@op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    return all(isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan))


@op
def isin(x1, x2, assume_unique=False, invert=False):
    x1, x2 = _tensors(x1, x2)
    return torch.isin(x1, x2, assume_unique=assume_unique, invert=invert)


@op
def divide_no_nan(x1, x2):
    x1, x2 = _tensors(x1, x2)
    x1, x2 = _float(x1), _float(x2)
    return torch.where(x2 == 0, torch.zeros_like(x1 / x2), x1 / torch.where(x2 == 0, 1, x2))


@op
def round(x, decimals=0):
    x = _t(x)
    if not x.is_floating_point():
        return x
    return torch.round(x, decimals=decimals)


@op
def clip(x, x_min, x_max):
    x = _t(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return torch.clamp(x, x_min, x_max)


@op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return torch.nan_to_num(_t(x), nan=nan, posinf=posinf, neginf=neginf)


@op
def where(condition, x1=None, x2=None):
    condition = _t(condition).to(torch.bool)
    if x1 is None and x2 is None:
        return torch.nonzero(condition).T  # one row of indices per axis, as Keras' torch backend
    if x1 is None or x2 is None:
        raise ValueError("ops.where: give both `x1` and `x2`, or neither.")
    x1, x2 = _tensors(x1, x2)
    return torch.where(condition, x1, x2)


@op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    x1, x2 = _tensors(x1, x2)
    return torch.isclose(x1, x2.to(x1.dtype), rtol=rtol, atol=atol, equal_nan=equal_nan)


# ----------------------------------------------------------------------------- reductions
def _reduce_all(torch_fn, x, axis, keepdims):
    if axis is None:
        out = torch_fn(x)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return torch_fn(x, dim=_axis(axis), keepdim=keepdims)


@op
def mean(x, axis=None, keepdims=False):
    x = _float(x)
    return x.mean() if axis is None and not keepdims else x.mean(dim=_axis(axis), keepdim=keepdims)


@op
def sum(x, axis=None, keepdims=False):
    x = _t(x)
    out = x.sum() if axis is None and not keepdims else x.sum(dim=_axis(axis), keepdim=keepdims)
    return _accumulated(x, out)


@op
def prod(x, axis=None, keepdims=False, dtype=None):
    x = _t(x)
    if axis is None:
        out = x.prod()
        out = out.reshape((1,) * x.ndim) if keepdims else out
    else:
        axes = sorted(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
        out = x
        for a in reversed(axes):
            out = out.prod(dim=a, keepdim=keepdims)
    out = _accumulated(x, out)
    return out if dtype is None else out.to(standardize_dtype(dtype))


def _extremum(torch_fn, x, axis, keepdims, initial, combine):
    x = _t(x)
    out = _reduce_all(torch_fn, x, _axis(axis), keepdims)
    return out if initial is None else combine(out, torch.tensor(initial, dtype=out.dtype))


@op
def max(x, axis=None, keepdims=False, initial=None):
    return _extremum(torch.amax, x, axis, keepdims, initial, torch.maximum)


@op
def min(x, axis=None, keepdims=False, initial=None):
    return _extremum(torch.amin, x, axis, keepdims, initial, torch.minimum)


@op
def amax(x, axis=None, keepdims=False):
    return max(x, axis=axis, keepdims=keepdims)


@op
def amin(x, axis=None, keepdims=False):
    return min(x, axis=axis, keepdims=keepdims)


@op
def var(x, axis=None, keepdims=False):
    return torch.var(_float(x), dim=_axis(axis), correction=0, keepdim=keepdims)


@op
def std(x, axis=None, keepdims=False):
    return torch.std(_float(x), dim=_axis(axis), correction=0, keepdim=keepdims)


@op
def all(x, axis=None, keepdims=False):
    x = _t(x).to(torch.bool)
    if isinstance(axis, (tuple, list)):
        return _reduce_many(torch.all, x, axis, keepdims)
    return _reduce_all(torch.all, x, axis, keepdims)


@op
def any(x, axis=None, keepdims=False):
    x = _t(x).to(torch.bool)
    if isinstance(axis, (tuple, list)):
        return _reduce_many(torch.any, x, axis, keepdims)
    return _reduce_all(torch.any, x, axis, keepdims)


def _reduce_many(torch_fn, x, axes, keepdims):
    out = x
    for a in sorted((a % x.ndim for a in axes), reverse=True):
        out = torch_fn(out, dim=a, keepdim=keepdims)
    return out


def _ignoring_nan(torch_fn, fill):
    """A reduction that skips NaN entries by putting `fill` in their place first."""

    def fn(x, axis=None, keepdims=False):
        x = _float(x)
        return torch_fn(torch.where(torch.isnan(x), fill, x), axis=axis, keepdims=keepdims)

    return fn


@op
def nansum(x, axis=None, keepdims=False):
    return _ignoring_nan(sum, 0.0)(x, axis, keepdims)


@op
def nanmax(x, axis=None, keepdims=False):
    return _ignoring_nan(max, -float("inf"))(x, axis, keepdims)


@op
def nanmin(x, axis=None, keepdims=False):
    return _ignoring_nan(min, float("inf"))(x, axis, keepdims)


@op
def nanmean(x, axis=None, keepdims=False):
    x = _float(x)
    counts = sum(~torch.isnan(x), axis=axis, keepdims=keepdims)
    return nansum(x, axis, keepdims) / counts


@op
def ptp(x, axis=None, keepdims=False):
    return max(x, axis=axis, keepdims=keepdims) - min(x, axis=axis, keepdims=keepdims)


@op
def percentile(x, q, axis=None, method="linear", keepdims=False):
    return quantile(x, _float(q) / 100.0, axis=axis, method=method, keepdims=keepdims)


@op
def count_nonzero(x, axis=None):
    return _index_dtype(torch.count_nonzero(_t(x), dim=_axis(axis)))


@op
def average(x, axis=None, weights=None):
    x = _float(x)
    if weights is None:
        return mean(x, axis=axis)
    weights = _float(weights)
    if axis is not None and weights.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        weights = weights.reshape(shape)
    return (x * weights).sum(dim=axis) / weights.expand_as(x).sum(dim=axis) if axis is not None \
        else (x * weights).sum() / weights.expand_as(x).sum()


@op
def median(x, axis=None, keepdims=False):
    return quantile(x, 0.5, axis=axis, keepdims=keepdims)


@op
def quantile(x, q, axis=None, method="linear", keepdims=False):
    x = _float(x)
    q = torch.as_tensor(q, dtype=x.dtype, device=x.device)
    if axis is None:
        out = torch.quantile(x.flatten(), q, interpolation=method)
        return out.reshape(q.shape + (1,) * x.ndim) if keepdims else out
    return torch.quantile(x, q, dim=axis, keepdim=keepdims, interpolation=method)


def _arg_extremum(torch_fn, x, axis, keepdims):
    x = _t(x)
    if axis is None:  # the index into the flattened tensor
        out = torch_fn(x)
        return _index_dtype(out.reshape((1,) * x.ndim) if keepdims else out)
    return _index_dtype(torch_fn(x, dim=axis, keepdim=keepdims))


@op
def argmax(x, axis=None, keepdims=False):
    return _arg_extremum(torch.argmax, x, axis, keepdims)


@op
def argmin(x, axis=None, keepdims=False):
    return _arg_extremum(torch.argmin, x, axis, keepdims)


@op
def argsort(x, axis=-1):
    x = _t(x)
    if axis is None:
        x, axis = x.flatten(), 0
    return _index_dtype(torch.argsort(x, dim=axis, stable=True))


@op
def sort(x, axis=-1):
    x = _t(x)
    if axis is None:
        x, axis = x.flatten(), 0
    return torch.sort(x, dim=axis, stable=True).values


def _scan(torch_fn, x, axis, dtype):
    x = _t(x)
    if axis is None:
        x, axis = x.flatten(), 0
    out = _accumulated(x, torch_fn(x, dim=axis))
    return out if dtype is None else out.to(standardize_dtype(dtype))


@op
def cumsum(x, axis=None, dtype=None):
    return _scan(torch.cumsum, x, axis, dtype)


@op
def cumprod(x, axis=None, dtype=None):
    return _scan(torch.cumprod, x, axis, dtype)


@op
def diff(a, n=1, axis=-1):
    return torch.diff(_t(a), n=n, dim=axis)


# ----------------------------------------------------------------------------- shapes
@op
def reshape(x, newshape):
    newshape = (newshape,) if isinstance(newshape, int) else tuple(-1 if d is None else d for d in newshape)
    return torch.reshape(_t(x), newshape)


@op
def ravel(x):
    return torch.ravel(_t(x))


@op
def expand_dims(x, axis):
    x = _t(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.ndim + len(axes)  # negative axes count from the end of the result
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


@op
def squeeze(x, axis=None):
    x = _t(x)
    if axis is None:
        return x.squeeze()
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"ops.squeeze: axis {a} of a tensor of shape {tuple(x.shape)} has size "
                             f"{x.shape[a]}, not 1, so it cannot be squeezed.")
    return x.squeeze(axes)


@op
def transpose(x, axes=None):
    x = _t(x)
    return x.permute(tuple(reversed(range(x.ndim))) if axes is None else tuple(axes))


@op
def swapaxes(x, axis1, axis2):
    return torch.swapaxes(_t(x), axis1, axis2)


@op
def moveaxis(x, source, destination):
    return torch.movedim(_t(x), source, destination)


@op
def broadcast_to(x, shape):
    return torch.broadcast_to(_t(x), tuple(shape))


@op
def tile(x, repeats):
    return torch.tile(_t(x), (repeats,) if isinstance(repeats, int) else tuple(repeats))


@op
def repeat(x, repeats, axis=None):
    x = _t(x)
    if axis is None:
        x, axis = x.flatten(), 0
    if not isinstance(repeats, int):
        repeats = _t(repeats).to(device=x.device, dtype=torch.int64)
    return torch.repeat_interleave(x, repeats, dim=axis)


@op
def flip(x, axis=None):
    x = _t(x)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    return torch.flip(x, axes)


@op
def roll(x, shift, axis=None):
    return torch.roll(_t(x), shift, dims=axis)


def _joined(xs):
    """Tensors to concatenate: numbers and arrays converted, dtypes promoted together."""
    tensors = [_t(x) for x in xs]
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(dtype) for t in tensors]


@op
def concatenate(xs, axis=0):
    tensors = _joined(xs)
    if axis is None:
        return torch.cat([t.flatten() for t in tensors])
    return torch.cat(tensors, dim=axis)


@op
def append(x1, x2, axis=None):
    return concatenate([x1, x2], axis=axis)


@op
def stack(x, axis=0):
    return torch.stack(_joined(x), dim=axis)


@op
def hstack(xs):
    tensors = _joined(xs)
    return torch.cat(tensors, dim=0 if tensors[0].ndim == 1 else 1)


@op
def vstack(xs):
    return torch.vstack(_joined(xs))


@op
def split(x, indices_or_sections, axis=0):
    x = _t(x)
    if isinstance(indices_or_sections, int):
        if x.shape[axis] % indices_or_sections:
            raise ValueError(
                f"ops.split: axis {axis} of size {x.shape[axis]} cannot be split into "
                f"{indices_or_sections} equal sections."
            )
        return list(torch.tensor_split(x, indices_or_sections, dim=axis))
    return list(torch.tensor_split(x, list(indices_or_sections), dim=axis))


@op
def vsplit(x, indices_or_sections):
    return split(x, indices_or_sections, axis=0)


@op
def hsplit(x, indices_or_sections):
    return split(x, indices_or_sections, axis=1 if _t(x).ndim > 1 else 0)


@op
def dstack(xs):
    return torch.dstack(_joined(xs))


@op
def rot90(array, k=1, axes=(0, 1)):
    return torch.rot90(_t(array), k, dims=tuple(axes))


@op
def array_split(x, indices_or_sections, axis=0):
    return list(torch.tensor_split(_t(x), indices_or_sections, dim=axis))


@op
def pad(x, pad_width, mode="constant", constant_values=None):
    x = _t(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    flat = [int(w) for pair in reversed(widths.tolist()) for w in pair]
    if mode == "constant":
        return torch.nn.functional.pad(x, flat, value=constant_values or 0)
    torch_mode = {"reflect": "reflect", "symmetric": None, "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is None:
        raise ValueError(f"ops.pad: mode={mode!r} is not supported; use 'constant', 'reflect', "
                         "'edge' or 'wrap'.")
    # torch pads the trailing axes of a batch; numpy-style pads of leading axes go through a
    # batch axis added in front.
    return torch.nn.functional.pad(x[None], flat, mode=torch_mode)[0]


@op
def triu(x, k=0):
    return torch.triu(_t(x), diagonal=k)


@op
def tril(x, k=0):
    return torch.tril(_t(x), diagonal=k)


@op
def diag(x, k=0):
    return torch.diag(_t(x), diagonal=k)


@op
def diagonal(x, offset=0, axis1=0, axis2=1):
    return torch.diagonal(_t(x), offset=offset, dim1=axis1, dim2=axis2)


@op
def trace(x, offset=0, axis1=0, axis2=1):
    x = _t(x)
    return _accumulated(x, torch.diagonal(x, offset=offset, dim1=axis1, dim2=axis2).sum(-1))


@op
def size(x):
    """The number of entries, as a 0-d int64 tensor (as Keras' torch backend returns it)."""
    return torch.tensor(_t(x).numel())


def ndim(x) -> int:
    return len(x.shape) if hasattr(x, "shape") else _t(x).ndim


# ----------------------------------------------------------------------------- linear algebra
@op
def matmul(x1, x2):
    x1, x2 = _tensors(x1, x2)
    dtype = torch.promote_types(x1.dtype, x2.dtype)
    return torch.matmul(x1.to(dtype), x2.to(dtype))


@op
def dot(x1, x2):
    x1, x2 = _tensors(x1, x2)
    if x1.ndim == 0 or x2.ndim == 0:
        return x1 * x2
    if x2.ndim > 2:  # numpy's dot: a sum over x1's last axis and x2's second-to-last
        return torch.tensordot(x1, x2, dims=([-1], [-2]))
    return matmul(x1, x2)


@op
def einsum(subscripts, *operands):
    tensors = _joined(operands)
    return torch.einsum(subscripts, *tensors)


@op
def tensordot(x1, x2, axes=2):
    x1, x2 = _joined((x1, x2))
    if isinstance(axes, (list, tuple)) and builtins.all(isinstance(a, int) for a in axes):
        axes = ([axes[0]], [axes[1]])
    return torch.tensordot(x1, x2, dims=axes)


@op
def kron(x1, x2):
    return torch.kron(*_joined((x1, x2)))


@op
def vdot(x1, x2):
    x1, x2 = _joined((x1, x2))
    return torch.dot(x1.flatten(), x2.flatten())


@op
def outer(x1, x2):
    x1, x2 = _joined((x1, x2))
    return torch.outer(x1.flatten(), x2.flatten())


@op
def inner(x1, x2):
    x1, x2 = _joined((x1, x2))
    return torch.inner(x1, x2)


@op
def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    x1, x2 = _joined((x1, x2))
    return torch.linalg.cross(x1, x2, dim=-1 if axis is None else axis)


# ----------------------------------------------------------------------------- indexing
@op
def take(x, indices, axis=None):
    x, indices = _t(x), _t(indices).to(torch.int64)
    if axis is None:
        x, axis = x.flatten(), 0
    axis = axis % x.ndim
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    out = torch.index_select(x, axis, indices.flatten())
    return out.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


@op
def take_along_axis(x, indices, axis=None):
    x, indices = _t(x), _t(indices).to(torch.int64)
    if axis is None:
        x, axis = x.flatten(), 0
    axis = axis % x.ndim
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    shape = list(torch.broadcast_shapes(x.shape[:axis] + (1,) + x.shape[axis + 1:],
                                        indices.shape[:axis] + (1,) + indices.shape[axis + 1:]))
    x = x.expand(shape[:axis] + [x.shape[axis]] + shape[axis + 1:])
    indices = indices.expand(shape[:axis] + [indices.shape[axis]] + shape[axis + 1:])
    return torch.gather(x, axis, indices)


def _decoded_key(key):
    """`key` as Python indexes it; a key saved in a config has its slices written as dicts."""
    if isinstance(key, dict) and "index" in key:
        return tuple(_decoded_key(k) for k in key["index"])
    if isinstance(key, dict) and "slice" in key:
        return builtins.slice(*key["slice"])
    if isinstance(key, dict) and key.get("ellipsis"):
        return Ellipsis
    if isinstance(key, torch.Tensor) or not isinstance(key, (list, np.ndarray)):
        return key
    return _t(key)


def _encoded_key(key):
    """An indexing key (ints, slices, Ellipsis, None) in the JSON form `_decoded_key` reads."""
    def encode(k):
        if isinstance(k, builtins.slice):
            return {"slice": [k.start, k.stop, k.step]}
        if k is Ellipsis:
            return {"ellipsis": True}
        return k

    return {"index": [encode(k) for k in (key if isinstance(key, tuple) else (key,))]}


@op
def nonzero(x):
    """The indices of the non-zero entries: one row of int32 indices per axis."""
    return _index_dtype(torch.nonzero(_t(x)).T)


@op
def searchsorted(sorted_sequence, values, side="left"):
    sorted_sequence, values = _t(sorted_sequence), _t(values)
    return _index_dtype(torch.searchsorted(sorted_sequence, values.to(sorted_sequence.dtype),
                                           right=side == "right"))


@op
def digitize(x, bins):
    x, bins = _t(x), _t(bins)
    return _index_dtype(torch.bucketize(x, bins.to(x.dtype), right=True))


@op
def bincount(x, weights=None, minlength=0, sparse=False):
    x = _t(x).to(torch.int64)
    out = torch.bincount(x, weights=None if weights is None else _t(weights), minlength=minlength)
    return _index_dtype(out) if weights is None else out


@op
def get_item(x, key):
    return _t(x)[_decoded_key(key)]


# ----------------------------------------------------------------------------- creation
def _floatx(dtype):
    return standardize_dtype(dtype) or torch.float32


def _on_device():
    from lamina.config import get_device

    return get_device()


def zeros(shape, dtype=None):
    return torch.zeros(_shape_tuple(shape), dtype=_floatx(dtype), device=_on_device())


def ones(shape, dtype=None):
    return torch.ones(_shape_tuple(shape), dtype=_floatx(dtype), device=_on_device())


def empty(shape, dtype=None):
    return zeros(shape, dtype)


def full(shape, fill_value, dtype=None):
    fill = _t(fill_value)
    dtype = _floatx(dtype)
    return torch.full(_shape_tuple(shape), 0, dtype=dtype, device=_on_device()) + fill.to(dtype)


def _shape_tuple(shape):
    return (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)


@op
def zeros_like(x, dtype=None):
    return torch.zeros_like(_t(x), dtype=standardize_dtype(dtype))


@op
def ones_like(x, dtype=None):
    return torch.ones_like(_t(x), dtype=standardize_dtype(dtype))


@op
def empty_like(x, dtype=None):
    return zeros_like(x, dtype)


@op
def full_like(x, fill_value, dtype=None):
    x = _t(x)
    return torch.full_like(x, 0, dtype=standardize_dtype(dtype)) + _t(fill_value).to(
        standardize_dtype(dtype) or x.dtype)


def arange(start, stop=None, step=1, dtype=None):
    """Keras' arange: int32 for int arguments, float32 when any is a float."""
    if stop is None:
        start, stop = 0, start
    values = (start, stop, step)
    default = torch.float32 if builtins.any(isinstance(v, float) for v in values) else torch.int32
    return torch.arange(start, stop, step, dtype=standardize_dtype(dtype) or default, device=_on_device())


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    dtype = standardize_dtype(dtype) or torch.float32
    count = num if endpoint else num + 1
    values = torch.linspace(float(start), float(stop), count, dtype=torch.float64)
    values = values if endpoint else values[:-1]
    values = values.to(dtype=dtype, device=_on_device())
    if retstep:
        step = (float(stop) - float(start)) / builtins.max(count - 1, 1)
        return values, step
    return values


def eye(N, M=None, k=0, dtype=None):
    M = N if M is None else M
    dtype = _floatx(dtype)
    if k == 0:
        return torch.eye(N, M, dtype=dtype, device=_on_device())
    return torch.ones(N, M, dtype=dtype, device=_on_device()).tril(k).triu(k)


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def tri(N, M=None, k=0, dtype=None):
    M = N if M is None else M
    return torch.ones(N, M, dtype=_floatx(dtype), device=_on_device()).tril(k)


def meshgrid(*x, indexing="xy"):
    return list(torch.meshgrid(*_joined(x), indexing=indexing))


def array(x, dtype=None):
    return convert_to_tensor(x, dtype=dtype)


# Keras keeps slogdet among the numpy ops (keras.ops.slogdet), not under linalg.
@op
def slogdet(x):
    return tuple(torch.linalg.slogdet(_float(x)))
