"""Activation functions with Keras' names and defaults.

`get(name)` returns the function. Outputs of `softmax` and `sigmoid` applied through `apply`
remember their input (the logits), so losses can be computed in the numerically stable form.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from lamina.utils.naming import lookup

__all__ = [
    "linear", "sigmoid", "hard_sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu",
    "gelu", "silu", "swish", "hard_silu", "hard_swish", "mish", "softplus", "softsign", "softmax",
    "log_softmax", "exponential", "get", "serialize", "apply",
]


def linear(x):
    return x


def sigmoid(x):
    return torch.sigmoid(x)


def hard_sigmoid(x):
    """Keras 3's piecewise-linear sigmoid: relu6(x + 3) / 6."""
    return F.relu6(x + 3.0) / 6.0


def tanh(x):
    return torch.tanh(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0), with Keras' options: a slope below `threshold`, a cap at `max_value`."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return F.relu(x)
    if threshold != 0.0:
        below = negative_slope * (x - threshold)
        y = torch.where(x >= threshold, x, below)
    elif negative_slope != 0.0:
        y = F.leaky_relu(x, negative_slope)
    else:
        y = F.relu(x)
    if max_value is not None:
        y = torch.clamp(y, max=max_value)
    return y


def relu6(x):
    return F.relu6(x)


def leaky_relu(x, negative_slope=0.2):
    return F.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    return F.elu(x, alpha)


def selu(x):
    return F.selu(x)


def gelu(x, approximate=False):
    return F.gelu(x, approximate="tanh" if approximate else "none")


def silu(x):
    return F.silu(x)


swish = silu


def hard_silu(x):
    return F.hardswish(x)


hard_swish = hard_silu


def mish(x):
    return F.mish(x)


def softplus(x):
    return F.softplus(x)


def softsign(x):
    return F.softsign(x)


def softmax(x, axis=-1):
    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(x, dim=axis)


def exponential(x):
    return torch.exp(x)


_NAMES = {
    "linear": linear, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "tanh": tanh,
    "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu, "selu": selu,
    "gelu": gelu, "silu": silu, "swish": swish, "hard_silu": hard_silu,
    "hard_swish": hard_swish, "mish": mish, "softplus": softplus, "softsign": softsign,
    "softmax": softmax, "log_softmax": log_softmax, "exponential": exponential,
}

# Outputs whose inputs are logits for a cross-entropy loss.
SQUASHING = {softmax: "softmax", sigmoid: "sigmoid"}


def get(identifier):
    """The activation function for a Keras name, None ("linear") or a callable."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("config", {}).get("name", identifier.get("class_name"))
    return lookup("activation", identifier, _NAMES)


def serialize(fn) -> str:
    base = fn.func if isinstance(fn, functools.partial) else fn
    for name, f in _NAMES.items():
        if f is base:
            return name
    return getattr(fn, "__name__", repr(fn))


def apply(fn, x):
    """fn(x); for softmax/sigmoid the result keeps `x` as `_lamina_logits` and the squash name."""
    y = fn(x)
    kind = SQUASHING.get(fn)
    if kind is not None:
        y._lamina_logits = x
        y._lamina_squash = kind
    return y
