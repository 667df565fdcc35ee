"""Dropout-type layers: random noise in training, the identity in inference.

All of them are `is_dropout`, so `model.predict_mc` switches them on for Monte-Carlo dropout while
everything else stays in inference mode. A `seed` gives a layer its own torch.Generator: two
layers with the same seed draw the same masks, and a seeded fit is reproducible whatever else
draws from torch's global generator. Without a seed they draw from torch's global generator
(seeded by `lamina.utils.set_random_seed`). Dropout's mask is the operator `lamina::dropout_mask`
seeded from that generator (`kernels/dropout.py`: a compiled counter-based hash on float32 CPU
tensors, several times faster than torch's bernoulli_; torch's uniform draw elsewhere).
"""

from __future__ import annotations

import math
import numbers

import torch

from lamina.kernels import dropout
from lamina.layers.base import InputSpec, Layer
from lamina.layers.conv import standardize_data_format

__all__ = [
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout",
]

# SELU's constants (Klambauer et al. 2017): AlphaDropout sets dropped units to SELU's negative
# saturation value, -scale * alpha, so that a SELU network keeps its self-normalizing statistics.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_rate(layer, rate):
    if (not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not math.isfinite(rate)
            or not 0 <= rate < 1):
        raise ValueError(
            f"{type(layer).__name__}: `rate` is the fraction of the inputs to drop and must be a "
            f"float in [0, 1) (1 would drop everything). Received: rate={rate!r}"
        )
    return float(rate)


def _check_noise_shape(layer, noise_shape):
    if noise_shape is None:
        return None
    if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
        raise ValueError(
            f"{type(layer).__name__}: `noise_shape` must be a tuple of ints or None, one per input "
            f"axis (batch included), e.g. (None, 1, 64). Received: noise_shape={noise_shape!r}"
        )
    noise_shape = tuple(noise_shape)
    for dim in noise_shape:
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0):
            raise ValueError(
                f"{type(layer).__name__}: each entry of `noise_shape` must be a positive int or "
                f"None (None takes the input's size). Received: noise_shape={noise_shape!r}"
            )
    return noise_shape


class _RandomNoise(Layer):
    """Shared by the layers below: off in inference, own generator when seeded, masks pass."""

    is_dropout = True
    supports_masking = True
    identity_in_inference = True  # a Sequential leaves the layer out of inference calls

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(
                f"{type(self).__name__}: `seed` must be an int or None. Received: seed={seed!r}"
            )
        self.seed = seed
        self._generator = None

    def _rng(self, device):
        """The layer's own generator when seeded (created on the device of its inputs), else None
        (torch's global generator)."""
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device).manual_seed(self.seed)
        return self._generator

    def _standard_normal(self, like):
        return torch.randn(like.shape, generator=self._rng(like.device), dtype=like.dtype,
                           device=like.device)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class Dropout(_RandomNoise):
    """Sets a fraction `rate` of the inputs to 0 in training and scales the others by
    1 / (1 - rate), so the expected sum is unchanged; the identity in inference.

    Args:
        rate: float in [0, 1), the fraction of the inputs to drop.
        noise_shape: optional tuple, one entry per input axis, of the shape of the binary mask
            that is broadcast over the input; None entries take the input's size. For inputs
            (batch, timesteps, features), `noise_shape=(None, 1, None)` drops the same features
            at every timestep.
        seed: optional int; the layer then draws its masks from its own generator.

    Input shape: any. Output shape: the input's.

    Example:
        >>> out = Dropout(0.5)(torch.ones(1000), training=True)
        >>> sorted(out.unique().tolist())  # about half dropped, the rest scaled by 1 / (1 - 0.5)
        [0.0, 2.0]
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate(self, rate)
        self.noise_shape = _check_noise_shape(self, noise_shape)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        mask_shape = self._mask_shape(inputs)
        like = inputs if mask_shape is None else inputs.new_empty(mask_shape)
        return inputs * dropout.draw_mask(like, self.rate, self._rng(inputs.device))

    def _keep_mask(self, inputs, shape):
        """Bool mask of `shape`, True with probability 1 - rate. Drawn in float32 so that the
        keep probability is exact for half-precision inputs too."""
        draw = torch.rand(shape, generator=self._rng(inputs.device), device=inputs.device)
        return draw >= self.rate

    def _mask_shape(self, inputs):
        """The shape of the mask broadcast over the inputs; None for one entry per input."""
        if self.noise_shape is None:
            return None
        shape = tuple(inputs.shape)
        resolved = tuple(d if n is None else n for n, d in zip(self.noise_shape, shape))
        if len(self.noise_shape) != len(shape) or any(n not in (1, d) for n, d in zip(resolved, shape)):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': noise_shape={self.noise_shape} must have one "
                f"entry per input axis, each None, 1 or the input's size, to broadcast over inputs "
                f"of shape {shape}."
            )
        return resolved

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape}


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one mask entry per (sample, channel), shared over space."""

    rank = None

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = standardize_data_format(self, data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _mask_shape(self, inputs):
        batch, ones = inputs.shape[0], (1,) * self.rank
        if self.data_format == "channels_last":
            return (batch, *ones, inputs.shape[-1])
        return (batch, inputs.shape[1], *ones)

    def get_config(self):
        config = {**super().get_config(), "data_format": self.data_format}
        del config["noise_shape"]
        return config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole feature channels of a sequence: each dropped channel is 0 at every timestep.

    Neighbouring timesteps are strongly correlated, so dropping single entries regularizes little;
    dropping entire channels does (Tompson et al. 2015).

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: "channels_last" (default, (batch, steps, channels)) or "channels_first".
        seed: optional int for the layer's own generator.

    Input shape: 3D (batch, steps, channels). Output shape: the input's.

    Example:
        >>> SpatialDropout1D(0.2)(torch.ones(4, 10, 8), training=True).shape
        torch.Size([4, 10, 8])
    """

    rank = 1


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of an image: each dropped channel is 0 at every pixel.

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: "channels_last" (default, (batch, rows, cols, channels)) or "channels_first".
        seed: optional int for the layer's own generator.

    Input shape: 4D. Output shape: the input's.

    Example:
        >>> SpatialDropout2D(0.2)(torch.ones(2, 5, 5, 3), training=True).shape
        torch.Size([2, 5, 5, 3])
    """

    rank = 2


class SpatialDropout3D(_SpatialDropout):
    """Drops whole 3D feature volumes: each dropped channel is 0 at every voxel.

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: "channels_last" (default, (batch, dim1, dim2, dim3, channels)) or
            "channels_first".
        seed: optional int for the layer's own generator.

    Input shape: 5D. Output shape: the input's.

    Example:
        >>> SpatialDropout3D(0.2)(torch.ones(2, 3, 3, 3, 4), training=True).shape
        torch.Size([2, 3, 3, 3, 4])
    """

    rank = 3


class GaussianDropout(_RandomNoise):
    """Multiplies the inputs by noise drawn from N(1, rate / (1 - rate)) in training: the same
    mean and variance as Dropout's scaled Bernoulli mask, but continuous. Identity in inference.

    Args:
        rate: float in [0, 1), the drop probability of the Dropout it imitates.
        seed: optional int for the layer's own generator.

    Input shape: any. Output shape: the input's.

    Example:
        >>> GaussianDropout(0.1)(torch.ones(2, 3), training=True).shape
        torch.Size([2, 3])
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate(self, rate)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return inputs * (1.0 + stddev * self._standard_normal(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class GaussianNoise(_RandomNoise):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` in training (a data
    augmentation for real-valued inputs). Identity in inference.

    Args:
        stddev: float >= 0, the standard deviation of the noise.
        seed: optional int for the layer's own generator.

    Input shape: any. Output shape: the input's.

    Example:
        >>> GaussianNoise(0.1)(torch.zeros(2, 3), training=True).shape
        torch.Size([2, 3])
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if (not isinstance(stddev, numbers.Real) or isinstance(stddev, bool)
                or not math.isfinite(stddev) or stddev < 0):
            raise ValueError(
                f"GaussianNoise: `stddev` must be a finite float >= 0. Received: stddev={stddev!r}"
            )
        self.stddev = float(stddev)

    def call(self, inputs, training=None):
        if not training or self.stddev == 0:
            return inputs
        return inputs + self.stddev * self._standard_normal(inputs)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


class AlphaDropout(Dropout):
    """Dropout for self-normalizing (SELU) networks: dropped inputs are set to SELU's negative
    saturation value -scale*alpha instead of 0, then an affine map `a*x + b` restores the mean and
    variance of the inputs, so zero-mean unit-variance activations stay so (Klambauer et al. 2017).
    Identity in inference.

    Args:
        rate: float in [0, 1), the fraction of the inputs to drop.
        noise_shape: optional tuple broadcast over the inputs, as in Dropout.
        seed: optional int for the layer's own generator.

    Input shape: any. Output shape: the input's.

    Example:
        >>> AlphaDropout(0.1)(torch.randn(2, 3), training=True).shape
        torch.Size([2, 3])
    """

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        dropped_value = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * dropped_value**2)) ** -0.5
        b = -a * dropped_value * self.rate
        keep = self._keep_mask(inputs, self._mask_shape(inputs) or inputs.shape)
        return a * torch.where(keep, inputs, dropped_value) + b
