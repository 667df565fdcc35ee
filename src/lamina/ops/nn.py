"""Neural-network ops (Keras' `keras.ops.nn`): activations, cross-entropies, one-hot encodings,
normalization statistics, convolution, pooling and attention, on channels_last tensors.

The activations are lamina.activations' functions; only the defaults Keras' ops give differently
(gelu is approximate here) get a wrapper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lamina import activations
from lamina.layers.conv import same_padding
from lamina.losses import probabilistic
from lamina.losses.base import EPSILON
from lamina.ops._dispatch import op
from lamina.ops.core import convert_to_tensor, standardize_dtype
from lamina.ops.numpy import _float

_t = convert_to_tensor


def _activation(fn, name=None):
    """An op over lamina's activation `fn`, taking arrays and numbers as the ops do."""

    def wrapper(x, *args, **kwargs):
        return fn(_float(x), *args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name or fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # inspect.signature then names the activation's own arguments
    return op(wrapper)


sigmoid = _activation(activations.sigmoid)
hard_sigmoid = _activation(activations.hard_sigmoid)
log_sigmoid = _activation(activations.log_sigmoid)
sparse_sigmoid = _activation(activations.sparse_sigmoid)
relu6 = _activation(activations.relu6)
elu = _activation(activations.elu)
celu = _activation(activations.celu)
selu = _activation(activations.selu)
silu = _activation(activations.silu)
swish = _activation(activations.silu, "swish")
hard_silu = _activation(activations.hard_silu)
hard_swish = _activation(activations.hard_silu, "hard_swish")
softplus = _activation(activations.softplus)
softsign = _activation(activations.softsign)
sparse_plus = _activation(activations.sparse_plus)
squareplus = _activation(activations.squareplus)
hard_tanh = _activation(activations.hard_tanh)
tanh_shrink = _activation(activations.tanh_shrink)
soft_shrink = _activation(activations.soft_shrink)
hard_shrink = _activation(activations.hard_shrink)
threshold = _activation(activations.threshold)
glu = _activation(activations.glu)
softmax = _activation(activations.softmax)
log_softmax = _activation(activations.log_softmax)
sparsemax = _activation(activations.sparsemax)


@op
def relu(x):
    return torch.relu(_t(x))


@op
def leaky_relu(x, negative_slope=0.2):
    return activations.leaky_relu(_float(x), negative_slope=negative_slope)


@op
def gelu(x, approximate=True):
    """GELU; approximate (tanh form) by default, as Keras' op (the activation's default is exact)."""
    return activations.gelu(_float(x), approximate=approximate)


# ----------------------------------------------------------------------------- encodings
@op
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Rows of zeros with a one at each index; an index outside [0, num_classes) gives zeros."""
    x = _t(x).to(torch.int64)
    valid = (x >= 0) & (x < num_classes)
    out = F.one_hot(torch.where(valid, x, 0), num_classes) * valid.unsqueeze(-1)
    out = out.to(standardize_dtype(dtype) or torch.float32)
    return out if axis == -1 else out.movedim(-1, axis)


@op
def multi_hot(inputs, num_classes, axis=-1, dtype=None, sparse=False):
    """One row per sample with a one at each index it lists (the one-hots of the last axis, or'ed)."""
    inputs = _t(inputs)
    if inputs.ndim == 1:  # one sample
        return multi_hot(inputs[None], num_classes, axis, dtype)[0]
    out = one_hot(inputs, num_classes, axis=-1, dtype=dtype).amax(dim=-2)
    return out if axis == -1 else out.movedim(-1, axis)


# ----------------------------------------------------------------------------- losses
@op
def binary_crossentropy(target, output, from_logits=False):
    """Element-wise binary cross-entropy (no reduction), probabilities clipped as Keras does."""
    output = _float(output)
    return probabilistic._binary_terms(_t(target).to(output.dtype), output, from_logits)[0]


@op
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    output = _float(output)
    return probabilistic.categorical_crossentropy(_t(target), output, from_logits=from_logits, axis=axis)


@op
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    output = _float(output)
    return probabilistic.sparse_categorical_crossentropy(_t(target), output, from_logits=from_logits,
                                                         axis=axis)


# ----------------------------------------------------------------------------- statistics
@op
def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over `axes`; the variance is the biased one, as Keras'."""
    x = _float(x)
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else (axes,)
    mean = x.mean(dim=axes, keepdim=True)
    variance = (x - mean).square().mean(dim=axes, keepdim=keepdims)
    return (mean if keepdims else mean.squeeze(axes)), variance


@op
def normalize(x, axis=-1, order=2, epsilon=None):
    x = _float(x)
    norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
    return x / norm.clamp_min(1e-12 if epsilon is None else epsilon)


@op
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, rms_scaling=False):
    x = _float(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    epsilon = EPSILON if epsilon is None else epsilon
    variance = x.var(dim=axes, correction=0, keepdim=True)
    out = (x - x.mean(dim=axes, keepdim=True)) * torch.rsqrt(variance + epsilon)
    if gamma is not None:
        out = out * _t(gamma)
    return out if beta is None else out + _t(beta)


@op
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    x = _float(x)
    epsilon = EPSILON if epsilon is None else epsilon
    out = x * torch.rsqrt(x.square().mean(dim=axis, keepdim=True) + epsilon)
    return out if scale is None else out * _t(scale)


@op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    x = _float(x)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]

    def along(v):
        return None if v is None else _t(v).reshape(shape)

    out = (x - along(mean)) * torch.rsqrt(along(variance) + epsilon)
    if scale is not None:
        out = out * along(scale)
    return out if offset is None else out + along(offset)


# ----------------------------------------------------------------------------- sliding windows
def _tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _channels_first(x, data_format):
    return x if data_format == "channels_first" else x.movedim(-1, 1)


def _back(x, data_format):
    return x if data_format == "channels_first" else x.movedim(1, -1)


def _padded(x, padding, window, strides, dilation, value=0.0):
    """x (channels first) with Keras' "same" padding applied; "valid" leaves it as it is."""
    if padding == "valid":
        return x
    if padding != "same":
        raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
    pads = same_padding(x.shape[2:], window, strides, dilation)
    return F.pad(x, [p for pair in reversed(pads) for p in pair], value=value)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution; the kernel is Keras' (*window, in_channels / groups, filters)."""
    inputs, kernel = _float(inputs), _float(kernel)
    rank = inputs.ndim - 2
    window, strides = kernel.shape[:rank], _tuple(strides, rank)
    dilation = _tuple(dilation_rate, rank)
    x = _padded(_channels_first(inputs, data_format), padding, window, strides, dilation)
    weight = kernel.permute(rank + 1, rank, *range(rank))
    groups = x.shape[1] // kernel.shape[-2]
    return _back(_CONV[rank](x, weight, stride=strides, dilation=dilation, groups=groups), data_format)


@op
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Depthwise convolution; the kernel is Keras' (*window, in_channels, depth_multiplier)."""
    kernel = _float(kernel)
    rank = kernel.ndim - 2
    grouped = kernel.reshape(*kernel.shape[:rank], 1, kernel.shape[-2] * kernel.shape[-1])
    return conv(inputs, grouped, strides, padding, data_format, dilation_rate)


def _pool(inputs, pool_size, strides, padding, data_format, torch_pool, pad_value):
    inputs = _float(inputs)
    rank = inputs.ndim - 2
    window = _tuple(pool_size, rank)
    strides = window if strides is None else _tuple(strides, rank)
    x = _channels_first(inputs, data_format)
    padded = _padded(x, padding, window, strides, (1,) * rank, pad_value)
    return _back(torch_pool(padded, window, strides), data_format), x, window, strides


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    rank = _t(inputs).ndim - 2
    return _pool(inputs, pool_size, strides, padding, data_format, _MAX_POOL[rank], -math.inf)[0]


@op
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling; with "same" padding the padded cells are not counted, as in Keras."""
    rank = _t(inputs).ndim - 2
    total, x, window, strides = _pool(inputs, pool_size, strides, padding, data_format,
                                      _AVG_POOL[rank], 0.0)
    if padding == "valid":
        return total
    # "same" padding: divide by the cells inside the input, not by the whole window.
    ones = torch.ones_like(x[:1, :1])
    inside = _AVG_POOL[rank](_padded(ones, padding, window, strides, (1,) * rank), window, strides)
    return total / _back(inside, data_format)


# ----------------------------------------------------------------------------- attention
@op
def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """softmax(q·kᵀ · scale + bias, masked) · v on (batch, length, heads, head_dim) tensors."""
    query, key, value = _float(query), _float(key), _float(value)
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    attn_mask = None
    if bias is not None:
        attn_mask = _float(bias)
    if mask is not None:
        allowed = _t(mask).to(torch.bool)
        attn_mask = allowed if attn_mask is None else attn_mask.masked_fill(~allowed, -math.inf)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
    return out.transpose(1, 2)
