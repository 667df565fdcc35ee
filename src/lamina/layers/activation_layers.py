"""Activation layers with options or weights: ReLU, LeakyReLU, PReLU, ELU and Softmax.

A plain activation by name is `layers.Activation("gelu")`; these layers add what a name cannot
carry: a cap and threshold, a slope, a learned slope per unit, an alpha, a softmax axis and mask.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from lamina import activations, initializers, regularizers
from lamina.layers.base import InputSpec, Layer

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]


class _Elementwise(Layer):
    """An activation applied element by element: same shape out, masks pass through."""

    supports_masking = True

    def compute_output_shape(self, input_shape):
        return input_shape


def _non_negative(layer, name, value, allow_none=False):
    if value is None and allow_none:
        return
    if value is None or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"{layer}: `{name}` must be a non-negative number{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r}"
        )


class ReLU(_Elementwise):
    """Rectified linear unit with an optional cap, slope and threshold.

    `f(x) = max_value` for `x >= max_value`, `x` for `threshold < x < max_value`,
    `negative_slope * (x - threshold)` otherwise.

    Args:
        max_value: non-negative cap on the output; None for no cap.
        negative_slope: non-negative slope below the threshold.
        threshold: non-negative value below which the output is cut.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> ReLU(max_value=6.0)(torch.tensor([-1.0, 3.0, 9.0]))
        tensor([0., 3., 6.])
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        _non_negative("ReLU", "max_value", max_value, allow_none=True)
        _non_negative("ReLU", "negative_slope", negative_slope)
        _non_negative("ReLU", "threshold", threshold)
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold

    def call(self, inputs):
        return activations.relu(inputs, negative_slope=self.negative_slope,
                                max_value=self.max_value, threshold=self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_Elementwise):
    """`x` for `x >= 0`, `negative_slope * x` below.

    Args:
        negative_slope: non-negative slope for negative inputs; 0.3 as in Keras (torch's default
            is 0.01, the `leaky_relu` function's 0.2). Keras 2's name `alpha` is accepted.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> LeakyReLU()(torch.tensor([-1.0, 2.0]))
        tensor([-0.3000,  2.0000])
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("LeakyReLU: `alpha` is the Keras 2 name; use `negative_slope`.",
                          stacklevel=2)
        super().__init__(**kwargs)
        _non_negative("LeakyReLU", "negative_slope", negative_slope)
        self.negative_slope = negative_slope

    def call(self, inputs):
        return activations.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class PReLU(_Elementwise):
    """Parametric ReLU: `x` for `x >= 0`, `alpha * x` below, with `alpha` learned per unit.

    Args:
        alpha_initializer: initializer of `alpha`; "zeros" as in Keras (so it starts as ReLU).
        alpha_regularizer: regularizer of `alpha`.
        shared_axes: input axes (1-based, the batch axis is 0) along which one `alpha` is shared,
            e.g. `shared_axes=[1]` for one slope per channel of a (batch, steps, channels) input.

    Input shape: any, with known sizes on the axes that are not shared.
    Output shape: same as the input. `alpha` has the input's shape without the batch axis, 1 on
    the shared axes.

    Example:
        >>> layer = PReLU(shared_axes=[1])
        >>> layer(torch.zeros(2, 10, 3)).shape, tuple(layer.alpha.shape)
        (torch.Size([2, 10, 3]), (1, 3))
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None and not all(isinstance(a, int) and a >= 1 for a in shared_axes):
            raise ValueError(
                "PReLU: `shared_axes` must be input axes >= 1 (axis 0 is the batch). "
                f"Received: shared_axes={shared_axes!r}"
            )
        self.shared_axes = None if shared_axes is None else list(shared_axes)

    def build(self, input_shape):
        rank = len(input_shape)
        shared = set(self.shared_axes or [])
        if any(a >= rank for a in shared):
            raise ValueError(
                f"PReLU '{self.name}': `shared_axes` {self.shared_axes} name axes beyond the input's "
                f"rank {rank} (input shape {tuple(input_shape)})."
            )
        unknown = [i for i in range(1, rank) if i not in shared and input_shape[i] is None]
        if unknown:
            raise ValueError(
                f"PReLU '{self.name}': input axes {unknown} have unknown size (input shape "
                f"{tuple(input_shape)}), so alpha cannot have one value per position there. "
                f"Share them: PReLU(shared_axes={sorted(shared | set(unknown))})."
            )
        alpha_shape = tuple(1 if i in shared else input_shape[i] for i in range(1, rank))
        self.add_weight("alpha", alpha_shape, self.alpha_initializer,
                        regularizer=self.alpha_regularizer)
        self.input_spec = InputSpec(ndim=rank, axes={i: input_shape[i] for i in range(1, rank)
                                                     if i not in shared})

    def call(self, inputs):
        return F.relu(inputs) - self.alpha * F.relu(-inputs)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "shared_axes": self.shared_axes}


class ELU(_Elementwise):
    """Exponential linear unit: `x` for `x > 0`, `alpha * (exp(x) - 1)` below.

    Args:
        alpha: scale of the negative part.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> ELU(alpha=0.5)(torch.tensor([-1.0, 2.0]))
        tensor([-0.3161,  2.0000])
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(alpha, (int, float)):
            raise ValueError(f"ELU: `alpha` must be a number. Received: alpha={alpha!r}")
        self.alpha = alpha

    def call(self, inputs):
        return activations.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


# Masked positions get this logit, so exp() sends them to 0 (Keras uses the same values).
def _large_negative(dtype):
    return -3e4 if dtype == torch.float16 else -1e9


class Softmax(_Elementwise):
    """Softmax along `axis`: `exp(x - max(x)) / sum(exp(x - max(x)))`.

    Args:
        axis: the axis, or a list of axes, that the probabilities sum to 1 over.

    Call arguments:
        inputs: the logits.
        mask: boolean (or 0/1) tensor broadcastable to `inputs`; masked positions get
            probability 0 (all of them, if a whole slice is masked).

    Input shape: any. Output shape: same as the input.

    Over the last axis without a mask, the output keeps its logits, so a cross-entropy loss on it
    is computed stably from them (as for `Dense(k, activation="softmax")`).

    Example:
        >>> Softmax()(torch.tensor([1.0, 2.0, 1.0]))
        tensor([0.2119, 0.5761, 0.2119])
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(axis, int) or isinstance(axis, (list, tuple)) and axis
                and all(isinstance(a, int) for a in axis)):
            raise ValueError(f"Softmax: `axis` must be an int or a list of ints. Received: axis={axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis

    def call(self, inputs, mask=None):
        axis = self.axis[0] if isinstance(self.axis, list) and len(self.axis) == 1 else self.axis
        if mask is None:
            if axis in (-1, inputs.ndim - 1):
                return activations.apply(activations.softmax, inputs)
            return activations.softmax(inputs, axis=tuple(axis) if isinstance(axis, list) else axis)
        mask = self._broadcastable_mask(mask, inputs)
        masked = torch.where(mask, inputs, torch.full_like(inputs, _large_negative(inputs.dtype)))
        probs = activations.softmax(masked, axis=tuple(axis) if isinstance(axis, list) else axis)
        return torch.where(mask, probs, torch.zeros_like(probs))

    def _broadcastable_mask(self, mask, inputs):
        mask = torch.as_tensor(mask, device=inputs.device)
        fits = mask.ndim <= inputs.ndim and all(
            m in (1, i) for m, i in zip(reversed(mask.shape), reversed(inputs.shape)))
        if not fits:
            raise ValueError(
                f"Softmax '{self.name}': the mask must be broadcastable to the inputs (each mask "
                f"axis 1 or equal to the input's, counted from the last). Received: inputs.shape="
                f"{tuple(inputs.shape)}, mask.shape={tuple(mask.shape)}"
            )
        return mask if mask.dtype == torch.bool else mask > 0.5

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
