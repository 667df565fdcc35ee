"""Normalization: Keras' preprocessing layer that standardizes features with adapted statistics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from lamina.layers.base import InputSpec, Layer
from lamina.layers.normalization._base import resolve_axis

# Keras' backend epsilon: the smallest standard deviation divided by.
_MIN_STD = 1e-7


def _as_array(batch) -> np.ndarray:
    if isinstance(batch, torch.Tensor):
        return batch.detach().cpu().double().numpy()
    if hasattr(batch, "to_numpy"):  # pandas
        batch = batch.to_numpy()
    if not hasattr(batch, "shape"):
        raise TypeError(
            "Normalization.adapt expects arrays or tensors, or an iterable of batches of them (a list, a "
            f"generator, a DataLoader). Received a batch of type {type(batch).__name__}."
        )
    return np.asarray(batch, dtype=np.float64)


def _batches(data):
    """`data` as an iterator of float64 arrays: one array, or the inputs of each batch."""
    if isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "to_numpy"):
        return iter([_as_array(data)])
    if not hasattr(data, "__iter__"):
        raise TypeError(
            "Normalization.adapt expects a numpy array, a tensor, a pandas object, or an iterable of "
            f"batches. Received {type(data).__name__}."
        )
    # (x, y) or (x, y, sample_weight) batches, as a DataLoader or a generator yields them: x only.
    return (_as_array(b[0] if isinstance(b, (tuple, list)) else b) for b in data)


class Normalization(Layer):
    """Standardizes features with a mean and variance learned once from data (Keras'
    preprocessing layer): `(x - mean) / sqrt(variance)`, or back with `invert=True`.

    The statistics come from `adapt(data)` (computed in float64 over the whole dataset, batch by
    batch) or from the `mean` and `variance` arguments; they never change in training. Calling
    the layer before either raises an error rather than passing data through unnormalized.

    Args:
        axis: the axis or axes that keep their own statistics (-1: one mean and variance per
            feature on the last axis); None for a single scalar mean and variance.
        mean, variance: fixed statistics instead of `adapt`, broadcast to the kept axes.
        invert: apply the inverse transformation, `mean + x * sqrt(variance)`, e.g. to turn a
            model's normalized predictions back into data units.

    Input shape: any (batch, ...). Output shape: the same, float32.

    Weights after `adapt` (Keras order): mean and variance (the kept axes' shape) and count, the
    number of values each statistic was computed from (Keras keeps 0 there).

    Example:
        >>> layer = Normalization()
        >>> layer.adapt(np.array([[0.0, 7.0], [2.0, 9.0]]))
        >>> layer(torch.tensor([[1.0, 8.0]]))
        tensor([[0., 0.]])
    """

    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        axes = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            raise TypeError(
                f"Normalization: `axis` must be an int, a tuple of ints or None. Received: axis={axis!r}"
            )
        if (mean is None) != (variance is None):
            raise ValueError(
                "Normalization: `mean` and `variance` must be given together. "
                f"Received: mean={mean!r}, variance={variance!r}"
            )
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError(
                "Normalization: `mean` and `variance` must have the same shape. Received shapes "
                f"{np.shape(mean)} and {np.shape(variance)}."
            )
        self.axis = axis
        self._axes = axes
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self._has_statistics = mean is not None

    def build(self, input_shape):
        rank = len(input_shape)
        self._kept = sorted({resolve_axis(self, a, rank) for a in self._axes})
        for d in self._kept:
            if input_shape[d] is None:
                raise ValueError(
                    f"Normalization '{self.name}': every kept axis needs a known size. Received axis="
                    f"{self.axis!r} and input shape {tuple(input_shape)}, with axis {d} unknown."
                )
        self._reduced = tuple(d for d in range(rank) if d not in self._kept)
        self._broadcast = tuple(input_shape[d] if d in self._kept else 1 for d in range(rank))
        stat_shape = tuple(input_shape[d] for d in self._kept)
        if self.input_mean is None:
            self.add_weight("mean", stat_shape, "zeros", trainable=False)
            self.add_weight("variance", stat_shape, "ones", trainable=False)
            self.add_weight("count", (), "zeros", trainable=False, dtype=torch.int64)
        else:
            for name, value in (("mean", self.input_mean), ("variance", self.input_variance)):
                value = torch.as_tensor(np.asarray(value, dtype=np.float32))
                try:
                    value = torch.broadcast_to(value, stat_shape).clone()
                except RuntimeError:
                    raise ValueError(
                        f"Normalization '{self.name}': `{name}` of shape {tuple(value.shape)} does not "
                        f"broadcast to the kept axes' shape {stat_shape}."
                    ) from None
                self.register_buffer(name, value, persistent=False)
        self.input_spec = InputSpec(ndim=rank, axes={d: input_shape[d] for d in self._kept})

    def adapt(self, data) -> None:
        """Compute the mean and variance of `data`: an array, tensor or pandas object, or an
        iterable of batches (a list of arrays, a generator, a DataLoader yielding (x, y) pairs).
        Batches are merged exactly (Chan et al.'s pairwise update) in float64."""
        if self.input_mean is not None:
            raise ValueError(
                f"Normalization '{self.name}' was given `mean` and `variance`; adapt() would ignore them. "
                "Create the layer without them to learn the statistics from data."
            )
        batches = _batches(data)
        first = next(batches, None)
        if first is None:
            raise ValueError(f"Normalization '{self.name}': adapt() received no data (an empty iterable).")
        if not self.built:
            self.build_from_shape(first.shape)
        count, mean, m2 = 0, 0.0, 0.0
        for batch in itertools.chain([first], batches):
            self.input_spec.check(self, batch.shape)
            batch_count = math.prod(batch.shape[d] for d in self._reduced)
            batch_mean = batch.mean(axis=self._reduced, keepdims=True)
            batch_m2 = ((batch - batch_mean) ** 2).sum(axis=self._reduced, keepdims=True)
            total = count + batch_count
            delta = batch_mean - mean
            mean = mean + delta * (batch_count / total)
            m2 = m2 + batch_m2 + delta**2 * (count * batch_count / total)
            count = total
        with torch.no_grad():
            self.mean.copy_(torch.as_tensor(mean.reshape(self.mean.shape)))
            self.variance.copy_(torch.as_tensor((m2 / count).reshape(self.variance.shape)))
            self.count.fill_(count)
        self._has_statistics = True

    def set_weights(self, weights) -> None:
        super().set_weights(weights)
        self._has_statistics = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if f"{prefix}mean" in state_dict:
            self._has_statistics = True

    def call(self, inputs):
        if not self._has_statistics:
            raise ValueError(
                f"Normalization '{self.name}' has no statistics yet: call `layer.adapt(data)` before using "
                "it, or create it with `mean=` and `variance=`."
            )
        x = inputs.to(self.compute_dtype)
        mean = self.mean.reshape(self._broadcast)
        std = torch.sqrt(self.variance.reshape(self._broadcast)).clamp_min(_MIN_STD)
        return torch.addcmul(mean, x, std) if self.invert else (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "invert": self.invert,
            "mean": None if self.input_mean is None else np.asarray(self.input_mean).tolist(),
            "variance": None if self.input_variance is None else np.asarray(self.input_variance).tolist(),
        }
