"""Activation functions with Keras 3's names, defaults and formulas.

`get(name)` returns the function for a Keras name ("relu", "gelu", "swish", …), None (linear) or a
callable. Layers apply their activation through `apply(fn, x)`: the outputs of `softmax` and
`sigmoid` then remember their input (the logits), so a cross-entropy loss can be computed in the
numerically stable log-softmax / log-sigmoid form.

Example:
    >>> from lamina import activations
    >>> activations.get("relu")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from lamina.utils.naming import lookup

__all__ = [
    "celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish",
    "relu", "relu6", "selu", "sigmoid", "silu", "swish", "soft_shrink", "softmax", "softplus",
    "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "tanh", "tanh_shrink",
    "threshold", "get", "serialize", "deserialize", "apply",
]


def linear(x):
    """The identity: `linear(x) = x`."""
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit with Keras' options.

    Args:
        negative_slope: slope below the threshold (0: plain ReLU).
        max_value: the output is capped at this value (None: no cap).
        threshold: values at or below it are cut (to 0, or to the negative slope line).

    As Keras: `x` where `x > threshold`, else 0; then capped to `[0, max_value]` if a cap is
    given; then `negative_slope * (threshold - x)` is subtracted where `x < threshold`.
    """
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return F.leaky_relu(x, negative_slope)
    if threshold != 0.0:
        y = torch.where(x > threshold, x, torch.zeros_like(x))
    elif max_value == 6:
        y, max_value = F.relu6(x), None
    else:
        y = F.relu(x)
    if max_value is not None:
        y = y.clamp(0.0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * F.relu(threshold - x)
    return y


def leaky_relu(x, negative_slope=0.2):
    """`x` for `x >= 0`, `negative_slope * x` below (the function's default is 0.2, the layer's 0.3)."""
    return F.leaky_relu(x, negative_slope)


def relu6(x):
    """`min(max(x, 0), 6)`."""
    return F.relu6(x)


def sigmoid(x):
    """`1 / (1 + exp(-x))`."""
    return torch.sigmoid(x)


def hard_sigmoid(x):
    """Piecewise-linear sigmoid (Keras 3): `relu6(x + 3) / 6`."""
    return F.hardsigmoid(x)


def log_sigmoid(x):
    """`log(sigmoid(x)) = -softplus(-x)`, stable for large |x|."""
    return F.logsigmoid(x)


def sparse_sigmoid(x):
    """0 for `x <= -1`, 1 for `x >= 1`, `(x + 1) / 2` between."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def tanh(x):
    """Hyperbolic tangent."""
    return torch.tanh(x)


def hard_tanh(x):
    """`x` clipped to [-1, 1]."""
    return F.hardtanh(x, -1.0, 1.0)


def tanh_shrink(x):
    """`x - tanh(x)`."""
    return F.tanhshrink(x)


def elu(x, alpha=1.0):
    """Exponential linear unit: `x` for `x > 0`, `alpha * (exp(x) - 1)` below."""
    return F.elu(x, alpha)


def celu(x, alpha=1.0):
    """Continuously differentiable ELU: `max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))`."""
    return F.celu(x, alpha)


def selu(x):
    """Scaled ELU with the self-normalizing constants (alpha ≈ 1.6733, scale ≈ 1.0507)."""
    return F.selu(x)


def gelu(x, approximate=False):
    """Gaussian error linear unit `x * Φ(x)`; `approximate=True` uses the tanh formula."""
    return F.gelu(x, approximate="tanh" if approximate else "none")


def silu(x):
    """Sigmoid linear unit (swish): `x * sigmoid(x)`."""
    return F.silu(x)


swish = silu


def hard_silu(x):
    """Hard swish: `x * relu6(x + 3) / 6`."""
    return F.hardswish(x)


hard_swish = hard_silu


def mish(x):
    """`x * tanh(softplus(x))`."""
    return F.mish(x)


def softplus(x):
    """`log(1 + exp(x))`."""
    return F.softplus(x)


def softsign(x):
    """`x / (1 + |x|)`."""
    return F.softsign(x)


def sparse_plus(x):
    """0 for `x <= -1`, `(x + 1)² / 4` for `-1 < x < 1`, `x` for `x >= 1`."""
    quadratic = (x + 1.0).square() / 4.0
    return torch.where(x <= -1.0, torch.zeros_like(x), torch.where(x < 1.0, quadratic, x))


def squareplus(x, b=4):
    """`(x + sqrt(x² + b)) / 2`, a smooth ReLU."""
    return (x + torch.sqrt(x.square() + b)) / 2.0


def soft_shrink(x, threshold=0.5):
    """`x - threshold` above it, `x + threshold` below `-threshold`, 0 between."""
    return F.softshrink(x, threshold)


def hard_shrink(x, threshold=0.5):
    """`x` where `|x| > threshold`, else 0."""
    return F.hardshrink(x, threshold)


def threshold(x, threshold, default_value):
    """`x` where `x > threshold`, else `default_value`."""
    return F.threshold(x, threshold, default_value)


def exponential(x):
    """`exp(x)`."""
    return torch.exp(x)


def softmax(x, axis=-1):
    """`exp(x) / sum(exp(x))` along `axis` (an int, a tuple of axes, or None for all axes)."""
    if axis is None or isinstance(axis, (tuple, list)):
        return torch.exp(log_softmax(x, axis))
    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    """`x - logsumexp(x)` along `axis` (an int, a tuple of axes, or None for all axes)."""
    if axis is None or isinstance(axis, (tuple, list)):
        dims = tuple(range(x.ndim)) if axis is None else tuple(axis)
        return x - torch.logsumexp(x, dim=dims, keepdim=True)
    return torch.log_softmax(x, dim=axis)


def sparsemax(x, axis=-1):
    """Euclidean projection of `x` onto the probability simplex (Martins & Astudillo, 2016):
    like softmax, a distribution along `axis`, but with exact zeros."""
    z = x.movedim(axis, -1)
    z_sorted = z.sort(dim=-1, descending=True).values
    ranks = torch.arange(1, z.shape[-1] + 1, device=x.device, dtype=x.dtype)
    cumulative = z_sorted.cumsum(-1)
    in_support = z_sorted - (cumulative - 1.0) / ranks > 0
    support_size = in_support.sum(-1, keepdim=True)
    support_sum = cumulative.gather(-1, support_size - 1)
    tau = (support_sum - 1.0) / support_size.to(x.dtype)
    return (z - tau).clamp_min(0.0).movedim(-1, axis)


def glu(x, axis=-1):
    """Gated linear unit: `a * sigmoid(b)` where `a, b` are the two halves of `x` along `axis`."""
    return F.glu(x, dim=axis)


_NAMES = {
    "celu": celu, "elu": elu, "exponential": exponential, "gelu": gelu, "glu": glu,
    "hard_shrink": hard_shrink, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
    "hard_swish": hard_swish, "hard_tanh": hard_tanh, "leaky_relu": leaky_relu, "linear": linear,
    "log_sigmoid": log_sigmoid, "log_softmax": log_softmax, "mish": mish, "relu": relu,
    "relu6": relu6, "selu": selu, "sigmoid": sigmoid, "silu": silu, "swish": swish,
    "soft_shrink": soft_shrink, "softmax": softmax, "softplus": softplus, "softsign": softsign,
    "sparse_plus": sparse_plus, "sparse_sigmoid": sparse_sigmoid, "sparsemax": sparsemax,
    "squareplus": squareplus, "tanh": tanh, "tanh_shrink": tanh_shrink, "threshold": threshold,
}
# Keras' second names for the same function; `serialize` gives the first name.
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

# Outputs whose inputs are logits for a cross-entropy loss.
SQUASHING = {softmax: "softmax", sigmoid: "sigmoid"}


def get(identifier):
    """The activation function for a Keras name, a Keras config, None ("linear") or a callable."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):  # {"class_name": "function", "config": "relu", ...}
        config = identifier.get("config")
        identifier = config.get("name") if isinstance(config, dict) else config
    return lookup("activation", identifier, _NAMES)


def serialize(fn) -> str:
    """The Keras name of an activation function (of the function under a functools.partial)."""
    base = fn.func if isinstance(fn, functools.partial) else fn
    for name, f in _NAMES.items():
        if f is base and name not in ALIASES:
            return name
    return getattr(fn, "__name__", repr(fn))


def deserialize(config, custom_objects=None):
    """The activation function named by `config`: a Keras name or config dict, or a name in
    `custom_objects`."""
    name = config.get("config") if isinstance(config, dict) else config
    name = name.get("name") if isinstance(name, dict) else name
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return get(config)


def apply(fn, x):
    """fn(x); for softmax/sigmoid the result keeps `x` as `_lamina_logits` and the squash name."""
    y = fn(x)
    kind = SQUASHING.get(fn)
    if kind is not None:
        y._lamina_logits = x
        y._lamina_squash = kind
    return y
