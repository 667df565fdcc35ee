"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, and Cropping, ZeroPadding and
UpSampling in 1D, 2D and 3D (each family one rank-generic class; the rank variants only fix the
rank and Keras' defaults). None of them carries a mask, as in Keras."""

from __future__ import annotations

import math

import torch.nn.functional as F

from lamina.layers.base import InputSpec, Layer
from lamina.layers.conv import _is_int, positive_int, standardize_data_format, standardize_tuple

__all__ = [
    "Flatten", "Reshape", "Permute", "RepeatVector",
    "Cropping1D", "Cropping2D", "Cropping3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
]


def _amount_pairs(value, rank, arg, layer) -> tuple:
    """Keras' forms of per-axis (before, after) amounts, as one (before, after) pair per spatial
    axis: an int for all sides; for 1D a pair; else one int (symmetric) or pair per axis."""
    def pair(v):
        if _is_int(v):
            return (v, v)
        if isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(x) for x in v):
            return tuple(v)
        return None

    if _is_int(value):
        pairs = ((value, value),) * rank
    elif rank == 1:
        pairs = (pair(value),)
    elif isinstance(value, (tuple, list)) and len(value) == rank:
        pairs = tuple(pair(v) for v in value)
    else:
        pairs = None
    if pairs is None or None in pairs or any(x < 0 for p in pairs for x in p):
        forms = "an int or a pair (before, after)" if rank == 1 else (
            f"an int, or {rank} entries (one per spatial axis), each an int or a pair (before, after)"
        )
        raise ValueError(
            f"{type(layer).__name__}: `{arg}` must be {forms}, all >= 0. Received: {arg}={value!r}"
        )
    return pairs


class Flatten(Layer):
    """Flattens every axis but the batch axis: (batch, d1, d2, ...) -> (batch, d1*d2*...).

    Args:
        data_format: "channels_last" (default) or "channels_first"; with "channels_first" the
            channel axis is moved last before flattening, so the order of the values matches a
            channels_last model's.

    Input shape: (batch, ...). Output shape: (batch, product of the other axes).

    Example:
        >>> Flatten()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 12])
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(self, data_format)
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.movedim(1, -1)
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (the batch axis is kept).

    Args:
        target_shape: tuple of positive ints, the shape without the batch axis; one entry may be
            -1 and is then inferred from the input's size.

    Input shape: (batch, ...). Output shape: (batch, *target_shape).

    Example:
        >>> Reshape((-1, 2))(torch.ones(3, 12)).shape
        torch.Size([3, 6, 2])
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)) or not all(
            _is_int(d) and (d > 0 or d == -1) for d in target_shape
        ) or list(target_shape).count(-1) > 1:
            raise ValueError(
                "Reshape: `target_shape` must be a tuple of positive ints without the batch axis, "
                f"with at most one -1 (inferred). Received: target_shape={target_shape!r}"
            )
        self.target_shape = tuple(target_shape)

    def build(self, input_shape):
        self._resolve(input_shape[1:])

    def _resolve(self, sample_shape):
        """The target shape with its -1 worked out (None when the input's size is unknown)."""
        if None in sample_shape:
            return tuple(None if d == -1 else d for d in self.target_shape)
        size, known = math.prod(sample_shape), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if -1 not in self.target_shape and size == known:
            return self.target_shape
        raise ValueError(
            f"Reshape '{self.name}': cannot reshape samples of shape {tuple(sample_shape)} ({size} "
            f"values) into target_shape={self.target_shape}; the number of values must not change."
        )

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], *self._resolve(tuple(inputs.shape[1:])))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolve(tuple(input_shape[1:])))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Permutes the non-batch axes: `dims` are 1-based, as in Keras (the batch axis is 0).

    Args:
        dims: a permutation of 1..n for inputs of rank n + 1; `Permute((2, 1))` swaps the two
            axes after the batch axis.

    Input shape: (batch, d1, ..., dn). Output shape: (batch, d_dims[0], ..., d_dims[n-1]).

    Example:
        >>> Permute((2, 1))(torch.ones(4, 10, 64)).shape
        torch.Size([4, 64, 10])
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dims, (tuple, list)) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Permute: `dims` must be a permutation of 1..n (1-based; the batch axis 0 stays "
                f"first), e.g. (2, 1). Received: dims={dims!r}"
            )
        self.dims = tuple(dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return inputs.permute(0, *self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class RepeatVector(Layer):
    """Repeats a vector `n` times: (batch, features) -> (batch, n, features).

    Args:
        n: positive int, the number of repetitions.

    Input shape: 2D (batch, features). Output shape: (batch, n, features).

    Example:
        >>> RepeatVector(3)(torch.ones(2, 5)).shape
        torch.Size([2, 3, 5])
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int(self, n, "n")
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class _Spatial(Layer):
    """A layer that changes the length of each spatial axis of (batch, *spatial, channels)
    inputs (or (batch, channels, *spatial) with data_format="channels_first")."""

    rank = None

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(self, data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _spatial_axes(self) -> range:
        first = 1 if self.data_format == "channels_last" else 2
        return range(first, first + self.rank)

    def _output_length(self, i, length):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for i, axis in enumerate(self._spatial_axes()):
            if shape[axis] is not None:
                shape[axis] = self._output_length(i, shape[axis])
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _Cropping(_Spatial):
    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self._pairs = _amount_pairs(cropping, self.rank, "cropping", self)
        self.cropping = self._pairs[0] if self.rank == 1 else self._pairs

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def _output_length(self, i, length):
        before, after = self._pairs[i]
        if before + after >= length:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': cropping={self.cropping} removes "
                f"{before + after} of the {length} steps of input axis {self._spatial_axes()[i]}; "
                "it must leave at least one."
            )
        return length - before - after

    def call(self, inputs):
        self.compute_output_shape(tuple(inputs.shape))
        index = [slice(None)] * inputs.ndim
        for (before, after), axis in zip(self._pairs, self._spatial_axes()):
            index[axis] = slice(before, inputs.shape[axis] - after)
        return inputs[tuple(index)]

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class Cropping1D(_Cropping):
    """Removes steps from the start and end of a sequence.

    Args:
        cropping: int (the same at both ends) or pair (start, end) of steps to remove.
        data_format: "channels_last" (default, (batch, steps, features)) or "channels_first"
            (a lamina extension; Keras' Cropping1D is channels_last only).

    Input shape: 3D (batch, steps, features). Output shape: (batch, steps - start - end, features).

    Example:
        >>> Cropping1D((1, 2))(torch.ones(2, 10, 3)).shape
        torch.Size([2, 7, 3])
    """

    rank = 1

    def __init__(self, cropping=(1, 1), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping2D(_Cropping):
    """Removes rows and columns at the borders of an image.

    Args:
        cropping: int (all four sides), pair (rows, cols) of symmetric amounts, or
            ((top, bottom), (left, right)).
        data_format: "channels_last" (default) or "channels_first".

    Input shape: 4D (batch, rows, cols, channels). Output shape: with the cropped rows and cols.

    Example:
        >>> Cropping2D(((1, 1), (2, 0)))(torch.ones(2, 6, 6, 3)).shape
        torch.Size([2, 4, 4, 3])
    """

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_Cropping):
    """Removes borders of a volume along its three spatial axes.

    Args:
        cropping: int, a triple of symmetric amounts, or three (before, after) pairs.
        data_format: "channels_last" (default) or "channels_first".

    Input shape: 5D (batch, d1, d2, d3, channels). Output shape: with the cropped axes.

    Example:
        >>> Cropping3D(1)(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class _ZeroPadding(_Spatial):
    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self._pairs = _amount_pairs(padding, self.rank, "padding", self)
        self.padding = self._pairs[0] if self.rank == 1 else self._pairs

    def _output_length(self, i, length):
        return length + sum(self._pairs[i])

    def call(self, inputs):
        amounts = dict(zip(self._spatial_axes(), self._pairs))
        # F.pad lists (before, after) from the last axis backwards, down to the first padded one.
        pad = [n for axis in range(inputs.ndim - 1, 0, -1) for n in amounts.get(axis, (0, 0))]
        return F.pad(inputs, pad)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class ZeroPadding1D(_ZeroPadding):
    """Adds zeros at the start and end of a sequence.

    Args:
        padding: int (the same at both ends) or pair (start, end) of zero steps to add.
        data_format: "channels_last" (default, (batch, steps, features)) or "channels_first".

    Input shape: 3D. Output shape: (batch, steps + start + end, features).

    Example:
        >>> ZeroPadding1D(2)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 9, 3])
    """

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Adds rows and columns of zeros at the borders of an image.

    Args:
        padding: int (all four sides), pair (rows, cols) of symmetric amounts, or
            ((top, bottom), (left, right)).
        data_format: "channels_last" (default) or "channels_first".

    Input shape: 4D. Output shape: with the padded rows and cols.

    Example:
        >>> ZeroPadding2D((1, 2))(torch.ones(1, 4, 4, 3)).shape
        torch.Size([1, 6, 8, 3])
    """

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    """Adds zeros at the borders of a volume along its three spatial axes.

    Args:
        padding: int, a triple of symmetric amounts, or three (before, after) pairs.
        data_format: "channels_last" (default) or "channels_first".

    Input shape: 5D. Output shape: with the padded axes.

    Example:
        >>> ZeroPadding3D(1)(torch.ones(1, 2, 2, 2, 3)).shape
        torch.Size([1, 4, 4, 4, 3])
    """

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class _UpSampling(_Spatial):
    def __init__(self, size, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self._factors = standardize_tuple(self, size, self.rank, "size")
        self.size = self._factors[0] if self.rank == 1 else self._factors

    def _output_length(self, i, length):
        return length * self._factors[i]

    def call(self, inputs):
        for factor, axis in zip(self._factors, self._spatial_axes()):
            inputs = inputs.repeat_interleave(factor, dim=axis)
        return inputs

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling1D(_UpSampling):
    """Repeats each step of a sequence `size` times.

    Args:
        size: positive int, the upsampling factor.
        data_format: "channels_last" (default, (batch, steps, features)) or "channels_first"
            (a lamina extension; Keras' UpSampling1D is channels_last only).

    Input shape: 3D. Output shape: (batch, steps * size, features).

    Example:
        >>> UpSampling1D(2)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 10, 3])
    """

    rank = 1

    def __init__(self, size=2, data_format=None, **kwargs):
        super().__init__(size, data_format, **kwargs)


class UpSampling2D(_UpSampling):
    """Enlarges an image by integer factors along rows and columns.

    Args:
        size: int or pair (rows, cols) of upsampling factors.
        data_format: "channels_last" (default) or "channels_first".
        interpolation: "nearest" (repeat each pixel, the default), "bilinear" or "bicubic"
            (torch's resize with half-pixel centres, as Keras' torch backend).

    Input shape: 4D. Output shape: (batch, rows * size[0], cols * size[1], channels).

    Example:
        >>> UpSampling2D((2, 3))(torch.ones(1, 2, 2, 4)).shape
        torch.Size([1, 4, 6, 4])
    """

    rank = 2
    _INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format, **kwargs)
        if str(interpolation).lower() not in self._INTERPOLATIONS:
            raise ValueError(
                f"UpSampling2D: `interpolation` must be one of {self._INTERPOLATIONS}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = str(interpolation).lower()

    def call(self, inputs):
        if self.interpolation == "nearest":
            return super().call(inputs)
        channels_last = self.data_format == "channels_last"
        images = inputs.permute(0, 3, 1, 2) if channels_last else inputs
        size = [self._output_length(i, images.shape[2 + i]) for i in range(2)]
        resized = F.interpolate(images, size=size, mode=self.interpolation, align_corners=False)
        return resized.permute(0, 2, 3, 1) if channels_last else resized

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


class UpSampling3D(_UpSampling):
    """Enlarges a volume by repeating its entries along the three spatial axes.

    Args:
        size: int or triple of upsampling factors.
        data_format: "channels_last" (default) or "channels_first".

    Input shape: 5D. Output shape: each spatial axis multiplied by its factor.

    Example:
        >>> UpSampling3D(2)(torch.ones(1, 2, 2, 2, 3)).shape
        torch.Size([1, 4, 4, 4, 3])
    """

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format, **kwargs)
