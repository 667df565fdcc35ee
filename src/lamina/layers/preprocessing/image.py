"""Rescaling, Resizing and CenterCrop, as Keras 3's (numerically as its torch backend)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina.layers.base import Layer
from lamina.layers.conv import positive_int, standardize_data_format

__all__ = ["Rescaling", "Resizing", "CenterCrop"]

INTERPOLATIONS = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic", "area": "area"}


class Rescaling(Layer):
    """`inputs * scale + offset`, in the layer's float dtype: e.g. `Rescaling(1 / 255)` maps
    pixels to [0, 1], `Rescaling(1 / 127.5, offset=-1)` to [-1, 1].

    Args:
        scale: a number, or a per-channel sequence broadcast over the last axis.
        offset: a number or sequence likewise.

    Input and output shape: any.
    """

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, inputs):
        x = inputs.to(self.compute_dtype)
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device)
        offset = torch.as_tensor(self.offset, dtype=x.dtype, device=x.device)
        return x * scale + offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def _output_dtype(self, input_dtype):
        return self.compute_dtype

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def image_size(layer, inputs):
    """(height, width) of a batch (rank 4) or one image (rank 3) in the layer's data format."""
    if inputs.dim() not in (3, 4):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' expects images of rank 4 (batch, height, width, "
            f"channels) or 3 (one image). Received shape {tuple(inputs.shape)}."
        )
    first = inputs.dim() - (3 if layer.data_format == "channels_last" else 2)
    return inputs.shape[first], inputs.shape[first + 1]


def channels_first_batch(layer, inputs):
    """The images as a (batch, channels, height, width) float tensor, and the function that
    returns a result of that form to the input's layout."""
    x = inputs.to(layer.compute_dtype)
    single = x.dim() == 3
    x = x.unsqueeze(0) if single else x
    last = layer.data_format == "channels_last"
    x = x.permute(0, 3, 1, 2) if last else x

    def back(y):
        y = y.permute(0, 2, 3, 1) if last else y
        return y.squeeze(0) if single else y

    return x, back


def resize_channels_first(x, size, interpolation, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
           fill_value=0.0, antialias=False):
    """Keras' torch resize of (batch, channels, H, W): optionally first the largest centered box
    of the target's aspect ratio (crop), or the image centered in the smallest box of that
    ratio (pad, with fill_value), then torch's interpolate."""
    height, width = x.shape[-2:]
    target_h, target_w = size
    if crop_to_aspect_ratio:
        crop_h = max(min(height, int(width * target_h / target_w)), 1)
        crop_w = max(min(width, int(height * target_w / target_h)), 1)
        top, left = int((height - crop_h) / 2), int((width - crop_w) / 2)
        x = x[:, :, top:top + crop_h, left:left + crop_w]
    elif pad_to_aspect_ratio:
        # Keras pads the same amount on both sides: int((padded - size) / 2) each.
        pad_h = int((max(height, int(width * target_h / target_w)) - height) / 2)
        pad_w = int((max(width, int(height * target_w / target_h)) - width) / 2)
        x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), value=fill_value)
    align = False if interpolation in ("bilinear", "bicubic") else None
    antialias = antialias and interpolation in ("bilinear", "bicubic")
    return F.interpolate(x, size=tuple(size), mode=INTERPOLATIONS[interpolation], align_corners=align,
                         antialias=antialias)


class _SizedImageLayer(Layer):
    """A layer that outputs images of a fixed (height, width)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = positive_int(self, height, "height")
        self.width = positive_int(self, width, "width")
        self.data_format = standardize_data_format(self, data_format)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        first = len(shape) - (3 if self.data_format == "channels_last" else 2)
        shape[first:first + 2] = [self.height, self.width]
        return tuple(shape)

    def _output_dtype(self, input_dtype):
        return self.compute_dtype

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "data_format": self.data_format}


class Resizing(_SizedImageLayer):
    """Resizes images to (height, width), as Keras' `Resizing` on its torch backend.

    Args:
        height, width: the output size.
        interpolation: "bilinear" (default), "nearest", "bicubic" or "area".
        crop_to_aspect_ratio: first crop the largest centered box with the target's aspect
            ratio, so that the image is not distorted.
        pad_to_aspect_ratio: instead, first pad the image (with `fill_value`) to the target's
            aspect ratio. fill_mode: "constant" only, as Keras' torch backend.
        antialias: low-pass filter when downsampling (bilinear and bicubic).
        data_format: "channels_last" (default) or "channels_first".

    Input shape: (batch, height, width, channels) or one image (height, width, channels).
    Output shape: the same with the new height and width.
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 data_format=None, **kwargs):
        super().__init__(height, width, data_format=data_format, **kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Resizing '{self.name}': `interpolation` must be one of {sorted(INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}"
            )
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(
                f"Resizing '{self.name}': only one of `crop_to_aspect_ratio` and "
                "`pad_to_aspect_ratio` can be True."
            )
        if fill_mode != "constant":
            raise ValueError(
                f"Resizing '{self.name}': `fill_mode` can only be 'constant' (as Keras' torch "
                f"backend). Received: fill_mode={fill_mode!r}"
            )
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode, self.fill_value = fill_mode, fill_value
        self.antialias = bool(antialias)

    def call(self, inputs):
        image_size(self, inputs)
        x, back = channels_first_batch(self, inputs)
        return back(resize_channels_first(x, (self.height, self.width), self.interpolation,
                                          self.crop_to_aspect_ratio, self.pad_to_aspect_ratio,
                                          self.fill_value, self.antialias))

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_SizedImageLayer):
    """Crops the central (height, width) box of each image, as Keras' `CenterCrop`. An image
    smaller than the box is resized instead (its largest centered box of the target's aspect
    ratio, bilinear), as Keras does.

    Input shape: (batch, height, width, channels) or one image. Output shape: the same with the
    new height and width.
    """

    def call(self, inputs):
        height, width = image_size(self, inputs)
        if height < self.height or width < self.width:
            x, back = channels_first_batch(self, inputs)
            return back(resize_channels_first(x, (self.height, self.width), "bilinear",
                                              crop_to_aspect_ratio=True))
        top, left = (height - self.height) // 2, (width - self.width) // 2
        rows, cols = slice(top, top + self.height), slice(left, left + self.width)
        x = inputs.to(self.compute_dtype)
        if self.data_format == "channels_last":
            return x[..., rows, cols, :]
        return x[..., rows, cols]
