"""The activation gallery: every activation function next to its derivative.

The derivative is not written down by hand: it is what torch autograd computes through lamina's own
activation, so the picture shows what training actually back-propagates (ReLU' is a step with 0
at 0, sigmoid' peaks at 0.25, the hard_* functions have flat zero-gradient regions).

    lamina plot activations -o activations.png
"""

from __future__ import annotations

import math

import torch

from lamina import activations as act
from lamina import initializers
from lamina.layers.activation_layers import PReLU

# The gallery's order: the classics first, then the smooth ReLU family, the hard/sparse variants,
# shrinkage functions, and the functions of a whole vector (plotted along one coordinate).
DEFAULT_NAMES = (
    "linear", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu",
    "silu", "mish", "softplus", "softsign", "squareplus", "exponential", "relu6", "hard_sigmoid",
    "hard_silu", "hard_tanh", "sparse_sigmoid", "sparse_plus", "log_sigmoid", "tanh_shrink",
    "soft_shrink", "hard_shrink", "softmax", "log_softmax", "sparsemax", "glu",
)
_X_RANGE = (-5.0, 5.0)
_POINTS = 1001
_COLUMNS = 6
_PRELU_SLOPE = 0.25


def _prelu():
    """A PReLU layer whose learned slope is set to 0.25, as one might find it after training."""
    return PReLU(alpha_initializer=initializers.Constant(_PRELU_SLOPE))


def _curve(name):
    """(title, f) with f mapping a 1-D tensor of x values to the plotted values."""
    if name == "prelu":
        layer = _prelu()
        return f"PReLU (learned α={_PRELU_SLOPE})", lambda x: layer(x[:, None].float()).double()[:, 0]
    fn = act.get(name)
    title = name if isinstance(name, str) else getattr(fn, "__name__", repr(fn))
    if name in ("softmax", "log_softmax", "sparsemax"):
        return f"{title}([x, 0])₀", lambda x: fn(torch.stack([x, torch.zeros_like(x)], -1))[:, 0]
    if name == "glu":
        return "glu([x, x]) = x·σ(x)", lambda x: fn(torch.stack([x, x], -1))[:, 0]
    if name == "threshold":
        return "threshold(x, 0, 0)", lambda x: fn(x, 0.0, 0.0)
    return title, fn


def _function_and_derivative(f):
    x = torch.linspace(*_X_RANGE, _POINTS, dtype=torch.float64, requires_grad=True)
    y = f(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return x.detach().numpy(), y.detach().numpy(), dy.numpy()


def activations(names=None):
    """A matplotlib Figure with one panel per activation: the function (solid) and its derivative
    from autograd (dashed) on x in [-5, 5].

    Args:
        names: activation names (Keras names such as "relu", "gelu", "swish", or "prelu" for a
            PReLU layer with slope 0.25) or callables; None draws the whole gallery.

    Returns:
        matplotlib.figure.Figure (save it with `fig.savefig("activations.png")`).

    Example:
        >>> fig = lamina.plots.activations(["relu", "sigmoid", "gelu"])
        >>> [ax.get_title() for ax in fig.axes]
        ['relu', 'sigmoid', 'gelu']
    """
    from matplotlib.figure import Figure

    names = list(DEFAULT_NAMES if names is None else names)
    if not names:
        raise ValueError("activations(): `names` is empty; pass activation names or None for all.")
    curves = [_curve(name) for name in names]
    columns = min(_COLUMNS, len(curves))
    rows = math.ceil(len(curves) / columns)
    figure = Figure(figsize=(2.9 * columns, 2.5 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, f) in zip(axes, curves):
        x, y, dy = _function_and_derivative(f)
        ax.axhline(0.0, color="0.8", linewidth=0.8)
        ax.axvline(0.0, color="0.8", linewidth=0.8)
        ax.plot(x, y, color="C0", linewidth=1.8, label="f(x)")
        ax.plot(x, dy, color="C3", linewidth=1.4, linestyle="--", label="f′(x)")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(*_X_RANGE)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best", frameon=False)
    for ax in axes[len(curves):]:
        figure.delaxes(ax)
    figure.suptitle("Activation functions f (solid) and their derivatives f′ from autograd (dashed)")
    return figure
