"""Random image augmentation as Keras 3's: RandomFlip, RandomRotation, RandomZoom.

They transform only in training mode and are the identity at inference. As in Keras, a layer
called directly (not inside a model's fit/predict) is in training mode: `RandomFlip()(images)`
flips, and `model.predict` never does. Rotation and zoom are one affine map per image about its
center (Keras' convention: the map sends output pixels to input pixels), sampled with torch's
grid_sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lamina.layers.base import Layer
from lamina.layers.conv import standardize_data_format
from lamina.layers.preprocessing.image import channels_first_batch, image_size

__all__ = ["RandomFlip", "RandomRotation", "RandomZoom"]

_FILL_MODES = {"reflect": "reflection", "constant": "zeros", "nearest": "border", "wrap": "zeros"}
_INTERPOLATIONS = ("bilinear", "nearest")


class _RandomImageLayer(Layer):
    """Shared by the augmentations: seeded generator, data format, training-mode default."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{type(self).__name__}: `seed` must be an int or None. Received: {seed!r}")
        self.seed = seed
        self.data_format = standardize_data_format(self, data_format)
        self._generator = None
        self.training = True  # Keras: a direct call augments; models switch it off to predict

    def _uniform(self, count, low, high, like):
        if self.seed is not None and (self._generator is None or self._generator.device != like.device):
            self._generator = torch.Generator(like.device).manual_seed(self.seed)
        draw = torch.rand(count, generator=self._generator, device=like.device, dtype=like.dtype)
        return low + (high - low) * draw

    def call(self, inputs, training=None):
        image_size(self, inputs)
        if not training:
            return inputs.to(self.compute_dtype)
        x, back = channels_first_batch(self, inputs)
        return back(self.transform(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def _output_dtype(self, input_dtype):
        return self.compute_dtype

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "data_format": self.data_format}


class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2 in training, as Keras' `RandomFlip`.

    Args:
        mode: "horizontal", "vertical" or "horizontal_and_vertical" (one draw per image flips
            it both ways, as Keras).
        seed: seed of the draws.
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ValueError(
                f"RandomFlip '{self.name}': `mode` must be 'horizontal', 'vertical' or "
                f"'horizontal_and_vertical'. Received: mode={mode!r}"
            )
        self.mode = mode

    def transform(self, x):
        flips = (self._uniform(x.shape[0], 0.0, 1.0, x) <= 0.5).view(-1, 1, 1, 1)
        dims = {"horizontal": [3], "vertical": [2], "horizontal_and_vertical": [2, 3]}[self.mode]
        return torch.where(flips, x.flip(dims), x)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _factor_range(layer, name, factor):
    """Keras' factor: a number f means (-f, f); a pair is (low, high)."""
    low, high = (-factor, factor) if isinstance(factor, (int, float)) else tuple(factor)
    if low > high:
        raise ValueError(f"{type(layer).__name__}: `{name}` must have low <= high. Received: {factor!r}")
    return float(low), float(high)


class _AffineLayer(_RandomImageLayer):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in _FILL_MODES:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': `fill_mode` must be one of "
                f"{sorted(_FILL_MODES)}. Received: fill_mode={fill_mode!r}"
            )
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': `interpolation` must be one of "
                f"{_INTERPOLATIONS}. Received: interpolation={interpolation!r}"
            )
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value

    def _sample(self, x, matrix):
        """Apply per-image 2x2 maps (batch, 2, 2) from output to input pixel offsets about the
        image center."""
        height, width = x.shape[-2:]
        # In grid_sample's coordinates (align_corners=False) an axis spans 2 / size per pixel.
        to_grid = torch.tensor([width / 2, height / 2], dtype=x.dtype, device=x.device)
        theta = matrix * to_grid.view(1, 1, 2) / to_grid.view(1, 2, 1)
        theta = torch.cat([theta, theta.new_zeros(theta.shape[0], 2, 1)], dim=2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.fill_mode == "wrap":
            grid = torch.remainder(grid + 1, 2) - 1
        out = F.grid_sample(x, grid, mode=self.interpolation, padding_mode=_FILL_MODES[self.fill_mode],
                            align_corners=False)
        if self.fill_mode == "constant" and self.fill_value:
            inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=self.interpolation,
                                   padding_mode="zeros", align_corners=False)
            out = out + (1 - inside) * self.fill_value
        return out

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomRotation(_AffineLayer):
    """Rotates each image by a random angle in training, as Keras' `RandomRotation`.

    Args:
        factor: a fraction of a full turn: f rotates by an angle in [-f * 360°, f * 360°]; a pair
            (low, high) gives the range. Positive angles turn counter-clockwise.
        fill_mode: how points outside the image are filled: "reflect" (default), "constant",
            "nearest" or "wrap". fill_value: the value for "constant".
        interpolation: "bilinear" (default) or "nearest". seed: seed of the draws.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, fill_value, seed, data_format, **kwargs)
        self.factor = _factor_range(self, "factor", factor)

    def transform(self, x):
        angle = self._uniform(x.shape[0], *self.factor, x) * 2 * math.pi
        cos, sin = torch.cos(angle), torch.sin(angle)
        matrix = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)
        return self._sample(x, matrix)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_AffineLayer):
    """Zooms each image by a random factor in training, as Keras' `RandomZoom`.

    Args:
        height_factor: f zooms the height by 1 + a draw from [-f, f] (a pair gives the range);
            positive values zoom out, negative ones in.
        width_factor: likewise for the width; None keeps the aspect ratio (the height's draw).
        fill_mode, interpolation, seed, fill_value: as for `RandomRotation`.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, fill_value, seed, data_format, **kwargs)
        self.height_factor = _factor_range(self, "height_factor", height_factor)
        self.width_factor = None if width_factor is None else _factor_range(self, "width_factor",
                                                                            width_factor)

    def transform(self, x):
        zoom_h = 1 + self._uniform(x.shape[0], *self.height_factor, x)
        zoom_w = zoom_h if self.width_factor is None else 1 + self._uniform(x.shape[0],
                                                                            *self.width_factor, x)
        zeros = torch.zeros_like(zoom_h)
        matrix = torch.stack([torch.stack([zoom_w, zeros], -1), torch.stack([zeros, zoom_h], -1)], 1)
        return self._sample(x, matrix)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}
