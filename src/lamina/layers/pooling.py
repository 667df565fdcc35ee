"""Pooling layers: max and average pooling over windows, and global pooling, in 1D/2D/3D.

Two bases parametrized by `rank`: `BasePooling` (windows of `pool_size` moved by `strides`) and
`BaseGlobalPooling` (one window over all spatial axes). A rank variant only sets `rank`.

"same" padding follows Keras' rule (any odd pixel of padding at the end), and padded positions
never count: max pooling pads with -inf, average pooling averages only the real inputs in each
window, as TensorFlow and JAX do. (Keras 3's torch backend pads uneven average-pooling windows
by repeating the edge value instead; lamina keeps the documented semantics.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina.layers.base import InputSpec, Layer
from lamina.layers.conv import (
    ChannelsFirstView,
    channel_axis,
    conv_output_length,
    pad_for_torch,
    run_channels_first,
    same_padding,
    spatial_output_shape,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
)

__all__ = [
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
    "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
]

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


class BasePooling(Layer):
    """Pooling over windows of `pool_size` moved by `strides`; subclasses set `rank` and `pool`.

    Args:
        pool_size: int or tuple of `rank` ints, the window's size.
        strides: int, tuple of `rank` ints, or None (default: pool_size).
        padding: "valid" (windows inside the input) or "same" (output length
            ceil(input / strides); padded positions never count).
        data_format: "channels_last" (default) or "channels_first".
    """

    rank: int

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = standardize_tuple(self, pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(self, pool_size if strides is None else strides, self.rank,
                                         "strides")
        self.padding = standardize_padding(self, padding)
        self.data_format = standardize_data_format(self, data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._view = ChannelsFirstView(self.rank, self.data_format)
        self._window = self._view.lift(self.pool_size, 1)
        self._torch_strides = self._view.lift(self.strides, 1)

    def build(self, input_shape):
        self.input_spec.check(self, input_shape)
        self.compute_output_shape(input_shape)

    def call(self, inputs):
        return run_channels_first(self, self.pool, inputs)

    def pool(self, x):
        raise NotImplementedError

    def same_pads(self, x):
        return same_padding(x.shape[2:], self._window, self._torch_strides, (1,) * self._view.rank)

    def compute_output_shape(self, input_shape):
        def length_of(length, axis):
            return conv_output_length(length, self.pool_size[axis], self.strides[axis], self.padding)

        channels = input_shape[channel_axis(self.data_format)]
        return spatial_output_shape(self, input_shape, length_of, channels)

    def window_description(self) -> str:
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling(BasePooling):
    """Max pooling; MaxPooling1D/2D/3D are this class with `rank` 1, 2, 3. Arguments as
    `BasePooling`, with pool_size 2 (per axis) by default."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self._max_pool = _MAX_POOL[self._view.rank]

    def pool(self, x):
        padding = 0
        if self.padding == "same":
            x, padding = pad_for_torch(x, self.same_pads(x), value=float("-inf"))
        return self._max_pool(x, self._window, self._torch_strides, padding)


class AveragePooling(BasePooling):
    """Average pooling; AveragePooling1D/2D/3D are this class with `rank` 1, 2, 3. Arguments as
    `BasePooling`. With "same" padding each output averages only the real inputs in its window."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self._avg_pool = _AVG_POOL[self._view.rank]

    def pool(self, x):
        if self.padding == "valid":
            return self._avg_pool(x, self._window, self._torch_strides)
        pads = self.same_pads(x)
        padded, padding = pad_for_torch(x, pads)
        y = self._avg_pool(padded, self._window, self._torch_strides, padding,
                           count_include_pad=False)
        if padded is not x:
            # Uneven padding was applied as zeros: divide each window by its share of real inputs.
            real, _ = pad_for_torch(x.new_ones((1, 1, *x.shape[2:])), pads)
            y = y / self._avg_pool(real, self._window, self._torch_strides)
        return y


class MaxPooling1D(MaxPooling):
    """Max pooling over steps: the largest value of each window of `pool_size` steps.

    Args: pool_size (default 2), strides (default pool_size), padding, data_format; see
    `BasePooling`.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, pooled_steps, channels), or (batch, channels, pooled_steps).

    Example:
        >>> MaxPooling1D(2)(torch.ones(4, 150, 8)).shape
        torch.Size([4, 75, 8])
    """

    rank = 1


class MaxPooling2D(MaxPooling):
    """2D max pooling. Args: pool_size (default (2, 2)), strides, padding, data_format.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, pooled_rows, pooled_cols, channels), or channels first.

    Example:
        >>> MaxPooling2D((2, 2), padding="same")(torch.ones(2, 7, 7, 3)).shape
        torch.Size([2, 4, 4, 3])
    """

    rank = 2


class MaxPooling3D(MaxPooling):
    """3D max pooling. Args: pool_size (default (2, 2, 2)), strides, padding, data_format.

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, p1, p2, p3, channels), or channels first.

    Example:
        >>> MaxPooling3D()(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    rank = 3


class AveragePooling1D(AveragePooling):
    """Average pooling over steps: the mean of each window of `pool_size` steps.

    Args: pool_size, strides (default pool_size), padding, data_format; see `BasePooling`.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, pooled_steps, channels), or (batch, channels, pooled_steps).

    Example:
        >>> AveragePooling1D(4, strides=1, padding="same")(torch.ones(2, 10, 3)).shape
        torch.Size([2, 10, 3])
    """

    rank = 1


class AveragePooling2D(AveragePooling):
    """2D average pooling. Args: pool_size, strides, padding, data_format.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, pooled_rows, pooled_cols, channels), or channels first.

    Example:
        >>> AveragePooling2D(2)(torch.ones(2, 8, 8, 3)).shape
        torch.Size([2, 4, 4, 3])
    """

    rank = 2


class AveragePooling3D(AveragePooling):
    """3D average pooling. Args: pool_size, strides, padding, data_format.

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, p1, p2, p3, channels), or channels first.

    Example:
        >>> AveragePooling3D(2)(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    rank = 3


# ----------------------------------------------------------------- global pooling
class BaseGlobalPooling(Layer):
    """Pooling over all spatial axes at once; subclasses set `rank` and `reduce`.

    Args:
        data_format: "channels_last" (default) or "channels_first".
        keepdims: keep the spatial axes with length 1 instead of dropping them.
    """

    rank: int

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(self, data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        first = 1 if self.data_format == "channels_last" else 2
        self._spatial_axes = tuple(range(first, first + self.rank))

    def call(self, inputs):
        return self.reduce(inputs, self._spatial_axes)

    def reduce(self, x, axes):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        spatial = (1,) * self.rank if self.keepdims else ()
        if self.data_format == "channels_last":
            return (input_shape[0], *spatial, channels)
        return (input_shape[0], channels, *spatial)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling(BaseGlobalPooling):
    """The mean over all spatial axes. GlobalAveragePooling1D/2D/3D are this class with `rank`
    1, 2, 3. Arguments as `BaseGlobalPooling`."""

    def reduce(self, x, axes):
        return x.mean(dim=axes, keepdim=self.keepdims)


class GlobalMaxPooling(BaseGlobalPooling):
    """The maximum over all spatial axes. GlobalMaxPooling1D/2D/3D are this class with `rank`
    1, 2, 3. Arguments as `BaseGlobalPooling`."""

    def reduce(self, x, axes):
        return x.amax(dim=axes, keepdim=self.keepdims)


class GlobalAveragePooling1D(GlobalAveragePooling):
    """The mean over steps of (batch, steps, channels) input.

    Honours a mask (from `Masking` or `Embedding(mask_zero=True)`, or passed as `mask=` of shape
    (batch, steps)): the mean is over the unmasked steps only, as Keras (a row with every step
    masked gives NaN). The output carries no mask.

    Args:
        data_format: "channels_last" (default) or "channels_first".
        keepdims: keep the steps axis with length 1.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, channels); with keepdims (batch, 1, channels) or (batch, channels, 1).

    Example:
        >>> GlobalAveragePooling1D()(torch.ones(4, 150, 128)).shape
        torch.Size([4, 128])
    """

    rank = 1

    def call(self, inputs, mask=None):
        if mask is None:
            return self.reduce(inputs, self._spatial_axes)
        steps_axis = self._spatial_axes[0]
        expected = (inputs.shape[0], inputs.shape[steps_axis])
        if tuple(mask.shape) != expected:
            raise ValueError(
                f"GlobalAveragePooling1D '{self.name}': the mask must have shape (batch, steps) = "
                f"{expected} for an input of shape {tuple(inputs.shape)}. Received mask of shape "
                f"{tuple(mask.shape)}."
            )
        keep = mask.bool().unsqueeze(3 - steps_axis)  # broadcast over the channel axis
        total = torch.where(keep, inputs, 0.0).sum(dim=steps_axis, keepdim=self.keepdims)
        return total / keep.sum(dim=steps_axis, keepdim=self.keepdims).to(inputs.dtype)


class GlobalAveragePooling2D(GlobalAveragePooling):
    """The mean over rows and cols of (batch, rows, cols, channels) input.

    Args: data_format, keepdims; see `BaseGlobalPooling`.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, channels); with keepdims (batch, 1, 1, channels) or channels first.

    Example:
        >>> GlobalAveragePooling2D()(torch.ones(2, 7, 7, 64)).shape
        torch.Size([2, 64])
    """

    rank = 2


class GlobalAveragePooling3D(GlobalAveragePooling):
    """The mean over the three spatial axes. Args: data_format, keepdims.

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, channels); with keepdims (batch, 1, 1, 1, channels) or channels first.

    Example:
        >>> GlobalAveragePooling3D(keepdims=True)(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 1, 1, 1, 2])
    """

    rank = 3


class GlobalMaxPooling1D(GlobalMaxPooling):
    """The maximum over steps of (batch, steps, channels) input. Args: data_format, keepdims.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, channels); with keepdims (batch, 1, channels) or (batch, channels, 1).

    Example:
        >>> GlobalMaxPooling1D()(torch.ones(4, 150, 128)).shape
        torch.Size([4, 128])
    """

    rank = 1


class GlobalMaxPooling2D(GlobalMaxPooling):
    """The maximum over rows and cols. Args: data_format, keepdims.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, channels); with keepdims (batch, 1, 1, channels) or channels first.

    Example:
        >>> GlobalMaxPooling2D()(torch.ones(2, 7, 7, 64)).shape
        torch.Size([2, 64])
    """

    rank = 2


class GlobalMaxPooling3D(GlobalMaxPooling):
    """The maximum over the three spatial axes. Args: data_format, keepdims.

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, channels); with keepdims (batch, 1, 1, 1, channels) or channels first.

    Example:
        >>> GlobalMaxPooling3D()(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2])
    """

    rank = 3


# Keras' alternative names.
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D)
