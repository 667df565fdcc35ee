"""Image ops (Keras' `keras.ops.image`) on channels_last batches: resize and extract_patches."""

from __future__ import annotations

import torch.nn.functional as F

from lamina.ops._dispatch import op
from lamina.ops.numpy import _float

__all__ = ["resize", "extract_patches"]

def _batched_channels_first(images, data_format):
    """(N, C, H, W) from a 3-D or 4-D image tensor, and how to undo it."""
    images = _float(images)
    single = images.ndim == 3
    if images.ndim not in (3, 4):
        raise ValueError(f"Expected an image (3-D) or a batch of images (4-D); received shape "
                         f"{tuple(images.shape)}.")
    x = images[None] if single else images
    x = x if data_format == "channels_first" else x.permute(0, 3, 1, 2)

    def back(y):
        y = y if data_format == "channels_first" else y.permute(0, 2, 3, 1)
        return y[0] if single else y

    return x, back


@op
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    # The Resizing layer's computation (crop or pad to the aspect ratio, then interpolate).
    from lamina.layers.preprocessing.image import INTERPOLATIONS, resize_channels_first

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"resize: `interpolation` must be one of {sorted(INTERPOLATIONS)}. "
                         f"Received: {interpolation!r}")
    x, back = _batched_channels_first(images, data_format)
    return back(resize_channels_first(x, size, interpolation, crop_to_aspect_ratio,
                                      pad_to_aspect_ratio, fill_value, antialias))


@op
def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """Patches of `size` as features: (batch, rows, cols, patch_h * patch_w * channels), each
    patch flattened row by row with the channels last."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    strides = size if strides is None else ((strides,) * 2 if isinstance(strides, int) else tuple(strides))
    if padding != "valid":
        raise NotImplementedError("extract_patches: only padding='valid' is supported.")
    x, back = _batched_channels_first(images, data_format)
    n, c, h, w = x.shape
    cols = F.unfold(x, size, dilation=dilation_rate, stride=strides)  # (N, C*ph*pw, L)
    rows_out = (h - dilation_rate * (size[0] - 1) - 1) // strides[0] + 1
    cols_out = (w - dilation_rate * (size[1] - 1) - 1) // strides[1] + 1
    patches = cols.reshape(n, c, size[0] * size[1], rows_out, cols_out)
    patches = patches.permute(0, 2, 1, 3, 4).reshape(n, size[0] * size[1] * c, rows_out, cols_out)
    return back(patches)
