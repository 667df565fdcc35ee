"""Convolution layers: Conv1D/2D/3D, their transposes, and the depthwise and separable variants.

All of them are one base, `BaseConv`, parametrized by `rank` (how many axes the kernel slides
along); a rank variant such as `Conv1D` only sets `rank`. Kernels are declared in Keras' layout
(`get_weights()` gives `(k..., in/groups, filters)`) and kept in torch's (`(filters, in/groups,
k...)`), so `F.convNd` runs on them as they are.

Keras' "same" padding puts the odd pixel at the end; when the two sides differ torch's symmetric
`padding` argument cannot say it, and the input is padded explicitly first.

The sliding-window helpers here (argument checks, "same" padding, output lengths, the move to
torch's channels-first form) serve the pooling layers too.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from lamina import activations, initializers, regularizers
from lamina.kernels.conv import convolution
from lamina.layers.base import InputSpec, Layer, Permuted

__all__ = [
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "Convolution1D", "Convolution2D", "Convolution3D", "Convolution1DTranspose",
    "Convolution2DTranspose", "Convolution3DTranspose", "SeparableConvolution1D",
    "SeparableConvolution2D",
]

_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


# ----------------------------------------------------------------- argument checks
def standardize_tuple(layer, value, rank, name, minimum=1) -> tuple[int, ...]:
    """An int or a sequence of `rank` ints, each >= `minimum`, as a tuple of `rank` ints."""
    values = (value,) * rank if _is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if len(values) != rank or not all(_is_int(v) and v >= minimum for v in values):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(
            f"{type(layer).__name__}: `{name}` must be an int or a tuple of {rank} {kind} ints. "
            f"Received: {name}={value!r}"
        )
    return tuple(int(v) for v in values)


def standardize_padding(layer, value, allowed=("valid", "same")) -> str:
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        hint = " ('causal' is for Conv1D only)" if padding == "causal" else ""
        raise ValueError(
            f"{type(layer).__name__}: `padding` must be one of {', '.join(map(repr, allowed))}"
            f"{hint}. Received: padding={value!r}"
        )
    return padding


def standardize_data_format(layer, value) -> str:
    data_format = "channels_last" if value is None else str(value).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{type(layer).__name__}: `data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={value!r}"
        )
    return data_format


def positive_int(layer, value, name) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError(
            f"{type(layer).__name__}: `{name}` must be a positive int. Received: {name}={value!r}"
        )
    return int(value)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ----------------------------------------------------------------- sliding-window arithmetic
def conv_output_length(length, window, stride, padding, dilation=1):
    """Keras' output length of a window sliding over `length` steps (None stays None)."""
    if length is None:
        return None
    if padding == "valid":
        return (length - (window - 1) * dilation - 1) // stride + 1
    return -(-length // stride)  # "same" and "causal": ceil(length / stride)


def same_padding(spatial_shape, window, strides, dilation) -> list[tuple[int, int]]:
    """Keras' (before, after) "same" padding per spatial axis; the odd pixel goes after."""
    pads = []
    for length, k, s, d in zip(spatial_shape, window, strides, dilation):
        total = max((-(-length // s) - 1) * s + (k - 1) * d + 1 - length, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def pad_for_torch(x, pads, value=0.0):
    """(x, padding) for a torch op: even padding goes to the op's own `padding` argument (no
    copy); uneven padding, which that argument cannot express, is applied here with F.pad."""
    if all(before == after for before, after in pads):
        return x, tuple(before for before, _ in pads)
    flat = [p for before, after in reversed(pads) for p in (before, after)]
    return pad(x, flat, value), 0


def pad(x, flat, value=0.0):
    """F.pad(x, flat, value=value); on CUDA a channels_last input stays channels_last (F.pad would
    return NCHW, and cuDNN would copy it back before a channels_last convolution)."""
    fmt = _channels_last_format(x)
    if x.device.type != "cuda" or fmt is None:
        return F.pad(x, flat, value=value)
    return pad_keeping_format(x, flat, value, fmt)


def _channels_last_format(x):
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return None


def pad_keeping_format(x, flat, value, fmt):
    """Constant padding (F.pad's `flat` order: last axis first) into a tensor of memory format `fmt`."""
    shape, window = list(x.shape), [slice(None)] * x.dim()
    for i in range(len(flat) // 2):
        axis, before, after = x.dim() - 1 - i, flat[2 * i], flat[2 * i + 1]
        shape[axis] += before + after
        window[axis] = slice(before, before + x.shape[axis])
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt).fill_(value)
    out[tuple(window)] = x
    return out


def spatial_output_shape(layer, input_shape, length_of, channels):
    """The output shape of a sliding-window layer: spatial length i becomes `length_of(n, i)`,
    the channel axis `channels`; unknown lengths stay None. A window that does not fit its input
    is an error naming the layer."""
    channels_last = layer.data_format == "channels_last"
    spatial = input_shape[1:-1] if channels_last else input_shape[2:]
    lengths = []
    for axis, length in enumerate(spatial):
        out = None if length is None else length_of(length, axis)
        if out is not None and out <= 0:
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}': an input of shape {tuple(input_shape)} is "
                f"too small for its window ({layer.window_description()}): spatial axis {axis} "
                f"would have length {out}. Use padding='same' or a larger input."
            )
        lengths.append(out)
    if channels_last:
        return (input_shape[0], *lengths, channels)
    return (input_shape[0], channels, *lengths)


class ChannelsFirstView:
    """Moves a layer's input to the (batch, channels, *spatial) form torch's ops take, and back.

    For channels_last input this is a permutation, i.e. a view: torch's 2D/3D kernels accept the
    resulting channels_last strides as they are. A 1D channels_last input runs as 2D with a
    height of 1, (N, L, C) -> (N, C, 1, L), so it gets the same copy-free channels_last path
    (torch's 1D ops would first copy it to (N, C, L)); `lift` adds the extra axis to the
    window arguments.
    """

    def __init__(self, rank, data_format):
        self.channels_last = data_format == "channels_last"
        self.lifted = rank == 1 and self.channels_last
        self.rank = 2 if self.lifted else rank
        self._to_first = (0, self.rank + 1, *range(1, self.rank + 1))
        self._to_last = (0, *range(2, self.rank + 2), 1)

    def lift(self, values, neutral) -> tuple:
        """Window arguments (kernel size, strides, …) for the op's rank."""
        return (neutral, *values) if self.lifted else tuple(values)

    def lift_kernel(self, kernel):
        return kernel.unsqueeze(2) if self.lifted else kernel

    def to_torch(self, x):
        if not self.channels_last:
            return x
        if self.lifted:
            x = x.unsqueeze(1)
        return x.permute(self._to_first)

    def from_torch(self, y):
        if not self.channels_last:
            return y
        y = y.permute(self._to_last)
        return y.squeeze(1) if self.lifted else y


def run_channels_first(layer, op, inputs):
    """`op` applied to `inputs` in torch's channels-first form, the result moved back to the
    layer's data format. An input too small for the window raises an error naming the layer
    (torch's own message names none)."""
    try:
        y = op(layer._view.to_torch(inputs))
    except RuntimeError:
        layer.compute_output_shape(tuple(inputs.shape))
        raise
    return layer._view.from_torch(y)


def channel_axis(data_format) -> int:
    return -1 if data_format == "channels_last" else 1


def kernel_layout(rank) -> tuple[int, ...]:
    """Keras' (k..., a, b) kernel as torch's (b, a, k...)."""
    return (rank + 1, rank, *range(rank))


class DepthwiseKernelLayout:
    """Keras' depthwise kernel (k..., channels, multiplier) kept as torch's grouped kernel
    (channels * multiplier, 1, k...): output channel c * multiplier + m comes from input c."""

    def __init__(self, rank, multiplier):
        self._axes = Permuted((rank, rank + 1, *range(rank)))
        self._multiplier = multiplier

    def from_keras(self, t):
        t = self._axes.from_keras(t)
        return t.reshape(-1, 1, *t.shape[2:])

    def to_keras(self, t):
        return self._axes.to_keras(t.reshape(-1, self._multiplier, *t.shape[2:]))


# ----------------------------------------------------------------- the shared base
class BaseConv(Layer):
    """What every convolution shares: window arguments, the move to torch's layout, bias and
    activation, output shapes. Subclasses set `rank`, create their weights in `build_weights`
    and compute in `convolve` (on channels-first input, returning channels-first output).

    Args:
        kernel_size: int or tuple of `rank` ints, the window's size.
        strides: int or tuple of `rank` ints. strides > 1 together with dilation_rate > 1 is
            an error, as in Keras (except for depthwise and separable convolutions).
        padding: "valid" (none), "same" (output length ceil(input / strides); any odd pixel of
            padding goes at the end), or "causal" (Conv1D only: left padding, so output t sees
            inputs up to t).
        data_format: "channels_last" (default, (batch, *spatial, channels)) or
            "channels_first" ((batch, channels, *spatial)).
        dilation_rate: int or tuple of `rank` ints, the spacing between kernel taps.
        activation: name or callable applied to the output; None is linear.
        use_bias: whether to add a bias per output channel.
        bias_initializer, bias_regularizer: Keras names or objects.
    """

    rank: int
    padding_modes = ("valid", "same")
    strided_dilation_allowed = False

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, bias_initializer="zeros", bias_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        rank = self.rank
        self.kernel_size = standardize_tuple(self, kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(self, strides, rank, "strides")
        self.dilation_rate = standardize_tuple(self, dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(self, padding, self.padding_modes)
        self.data_format = standardize_data_format(self, data_format)
        if (not self.strided_dilation_allowed and max(self.strides) > 1
                and max(self.dilation_rate) > 1):
            raise ValueError(
                f"{type(self).__name__}: strides > 1 cannot be combined with dilation_rate > 1. "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._view = ChannelsFirstView(rank, self.data_format)
        self._window = self._view.lift(self.kernel_size, 1)
        self._torch_strides = self._view.lift(self.strides, 1)
        self._torch_dilation = self._view.lift(self.dilation_rate, 1)

    # ------------------------------------------------------------- build
    def build(self, input_shape):
        InputSpec(ndim=self.rank + 2).check(self, input_shape)
        axis = channel_axis(self.data_format)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the channel axis ({axis}) of its input must "
                f"be known to build the kernel. Received input shape {tuple(input_shape)}."
            )
        self.compute_output_shape(input_shape)
        self.build_weights(channels)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={axis: channels})

    def build_weights(self, channels):
        raise NotImplementedError

    def add_bias(self, size):
        if self.use_bias:
            self.add_weight("bias", (size,), self.bias_initializer, regularizer=self.bias_regularizer)
        else:
            self.register_parameter("bias", None)

    # ------------------------------------------------------------- call
    def call(self, inputs):
        return activations.apply(self.activation, run_channels_first(self, self.convolve, inputs))

    def convolve(self, x):
        raise NotImplementedError

    def slide(self, x, kernel, bias, groups=1):
        """torch's convolution of channels-first `x` with a torch-layout kernel, Keras' padding."""
        if self.padding == "valid":
            padding = 0
        elif self.padding == "causal":
            x, padding = pad(x, ((self.kernel_size[0] - 1) * self.dilation_rate[0], 0)), 0
        else:
            pads = same_padding(x.shape[2:], self._window, self._torch_strides, self._torch_dilation)
            x, padding = pad_for_torch(x, pads)
        return convolution(x, self._view.lift_kernel(kernel), bias, self._torch_strides, padding,
                           self._torch_dilation, groups)

    # ------------------------------------------------------------- shapes and config
    def compute_output_shape(self, input_shape):
        channels = self.output_channels(input_shape[channel_axis(self.data_format)])
        return spatial_output_shape(self, input_shape, self.output_length, channels)

    def output_length(self, length, axis):
        return conv_output_length(length, self.kernel_size[axis], self.strides[axis], self.padding,
                                   self.dilation_rate[axis])

    def output_channels(self, input_channels):
        return self.filters

    def window_description(self) -> str:
        return (f"kernel_size={self.kernel_size}, strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}, padding={self.padding!r}")

    def get_config(self):
        return {
            **super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class _KernelConv(BaseConv):
    """A convolution with one `kernel` of `filters` outputs (plain and transposed)."""

    def __init__(self, filters, kernel_size, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = positive_int(self, filters, "filters")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def add_kernel(self, keras_shape):
        self.add_weight("kernel", keras_shape, self.kernel_initializer, layout=kernel_layout(self.rank),
                        regularizer=self.kernel_regularizer)
        self.add_bias(self.filters)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
        }


# ----------------------------------------------------------------- plain convolution
class Conv(_KernelConv):
    """N-D convolution (cross-correlation, as Keras): `activation(conv(inputs, kernel) + bias)`.

    Conv1D, Conv2D and Conv3D are this class with `rank` 1, 2 and 3.

    Args:
        filters: number of output channels.
        kernel_size, strides, padding, data_format, dilation_rate: the window; see `BaseConv`.
            padding "causal" is accepted by Conv1D.
        groups: split input channels and filters into this many groups, each convolved on its
            own; both must be divisible by it.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as Keras.

    The kernel is (*kernel_size, in_channels // groups, filters) in `get_weights()` and kept as
    torch's (filters, in_channels // groups, *kernel_size).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, kernel_initializer, kernel_regularizer,
                         strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer, **kwargs)
        self.groups = positive_int(self, groups, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"{type(self).__name__}: `filters` must be divisible by `groups`. Received: "
                f"filters={filters}, groups={groups}"
            )

    def build_weights(self, channels):
        if channels % self.groups:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': its input's {channels} channels must be "
                f"divisible by groups={self.groups}."
            )
        self.add_kernel((*self.kernel_size, channels // self.groups, self.filters))
        if self._view.channels_last:
            # Kept in channels_last memory order ((filters, *kernel_size, in) in memory; a lifted
            # Conv1D's 4D view is then channels_last too), the order oneDNN and cuDNN take it in
            # for channels_last activations: no copy of it before each convolution, forward and
            # backward, and a gradient already in the weight's order (FCN's training step copied
            # each large kernel 4 times, ~1 ms of ~25, now once inside torch's oneDNN backward).
            # The optimizer's slots take the weight's strides (zeros_like; restored ones too).
            self.kernel.data = self.kernel.data.movedim(1, -1).contiguous().movedim(-1, 1)

    def convolve(self, x):
        return self.slide(x, self.kernel, self.bias, self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


class Conv1D(Conv):
    """1D convolution: a kernel slides along the steps of (batch, steps, channels) input.

    Each of the `filters` kernels spans all input channels (e.g. open/high/low/close of a price
    series) and `kernel_size` steps. Arguments as `Conv`; padding may also be "causal".

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, new_steps, filters), or (batch, filters, new_steps).

    Example:
        >>> layer = Conv1D(128, 8, padding="same")
        >>> layer(torch.ones(4, 150, 1)).shape
        torch.Size([4, 150, 128])
    """

    rank = 1
    padding_modes = ("valid", "same", "causal")


class Conv2D(Conv):
    """2D convolution over (batch, height, width, channels) input. Arguments as `Conv`.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, new_rows, new_cols, filters), or (batch, filters, new_rows, new_cols).

    Example:
        >>> Conv2D(8, (3, 3), strides=2, padding="same")(torch.ones(2, 28, 28, 1)).shape
        torch.Size([2, 14, 14, 8])
    """

    rank = 2


class Conv3D(Conv):
    """3D convolution over (batch, depth, height, width, channels) input. Arguments as `Conv`.

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, n1, n2, n3, filters), or (batch, filters, n1, n2, n3).

    Example:
        >>> Conv3D(4, 3)(torch.ones(2, 8, 8, 8, 1)).shape
        torch.Size([2, 6, 6, 6, 4])
    """

    rank = 3


# ----------------------------------------------------------------- transposed convolution
def transpose_output_length(length, window, stride, padding, output_padding, dilation):
    """Keras' output length of a transposed convolution (None stays None)."""
    if length is None:
        return None
    span = (window - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return (length - 1) * stride + span + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + span % 2 + output_padding


def _transpose_crops(window, stride, padding, output_padding, dilation) -> tuple[int, int]:
    """How much Keras drops from each end of the full transposed convolution, whose length is
    (length - 1) * stride + span; a negative amount adds zeros instead."""
    span = (window - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return 0, -extra
    # "same": the padding of the stride-dilated input in the equivalent forward convolution.
    total = stride + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
    before = min(-(-total // 2), span - 1)
    return span - 1 - before, span - 1 - (total - before)


class ConvTranspose(_KernelConv):
    """N-D transposed convolution (the gradient of a convolution; "deconvolution").

    Conv1DTranspose, Conv2DTranspose and Conv3DTranspose are this class with `rank` 1, 2, 3.

    Args:
        filters: number of output channels.
        kernel_size, strides, padding ("valid" or "same"), data_format, dilation_rate: see
            `BaseConv`.
        output_padding: None, or an int or tuple of `rank` ints, each < its stride: extra length
            at the end of each spatial axis. With None, "same" gives input * strides and
            "valid" (input - 1) * strides + max(kernel_size, strides) (dilated kernel).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as Keras.

    The kernel is (*kernel_size, filters, in_channels) in `get_weights()` and kept as torch's
    (in_channels, filters, *kernel_size).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, kernel_initializer, kernel_regularizer,
                         strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer, **kwargs)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = standardize_tuple(self, output_padding, self.rank,
                                                    "output_padding", minimum=0)
            if any(p >= s for p, s in zip(self.output_padding, self.strides)):
                raise ValueError(
                    f"{type(self).__name__}: each `output_padding` must be smaller than its "
                    f"stride. Received: output_padding={self.output_padding}, "
                    f"strides={self.strides}"
                )
        self._conv_transpose = _CONV_TRANSPOSE[self._view.rank]
        self._torch_padding, self._torch_output_padding, self._trims = self._torch_arguments()

    def _torch_arguments(self):
        """torch's (padding, output_padding) per axis reproducing Keras' crops, and what is left
        to slice off each end afterwards where torch cannot express the crop.

        torch keeps full[padding : len - padding + output_padding] with output_padding <
        max(stride, dilation): exact when the left crop exceeds the right by less than that.
        Otherwise torch crops the smaller amount from both ends and the rest is sliced off;
        Keras' rules never crop negatively there, so slicing suffices.
        """
        paddings, output_paddings, trims = [], [], []
        for axis in range(self.rank):
            extra = None if self.output_padding is None else self.output_padding[axis]
            stride, dilation = self.strides[axis], self.dilation_rate[axis]
            before, after = _transpose_crops(self.kernel_size[axis], stride, self.padding, extra,
                                             dilation)
            if 0 <= before - after < max(stride, dilation):
                paddings.append(before)
                output_paddings.append(before - after)
                trims.append((0, 0))
            else:
                common = min(before, after)
                paddings.append(common)
                output_paddings.append(0)
                trims.append((before - common, after - common))
        lift = self._view.lift
        trims = lift(trims, (0, 0))
        slices = None
        if any(t != (0, 0) for t in trims):
            slices = (slice(None), slice(None),
                      *(slice(before, -after if after else None) for before, after in trims))
        return lift(paddings, 0), lift(output_paddings, 0), slices

    def build_weights(self, channels):
        self.add_kernel((*self.kernel_size, self.filters, channels))

    def convolve(self, x):
        y = self._conv_transpose(x, self._view.lift_kernel(self.kernel), self.bias,
                                 self._torch_strides, self._torch_padding,
                                 self._torch_output_padding, 1, self._torch_dilation)
        return y if self._trims is None else y[self._trims]

    def output_length(self, length, axis):
        extra = None if self.output_padding is None else self.output_padding[axis]
        return transpose_output_length(length, self.kernel_size[axis], self.strides[axis],
                                       self.padding, extra, self.dilation_rate[axis])

    def get_config(self):
        return {**super().get_config(), "output_padding": self.output_padding}


class Conv1DTranspose(ConvTranspose):
    """1D transposed convolution, e.g. to upsample a sequence. Arguments as `ConvTranspose`.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, new_steps, filters), or (batch, filters, new_steps).

    Example:
        >>> Conv1DTranspose(8, 3, strides=2, padding="same")(torch.ones(2, 10, 4)).shape
        torch.Size([2, 20, 8])
    """

    rank = 1


class Conv2DTranspose(ConvTranspose):
    """2D transposed convolution, e.g. to upsample an image. Arguments as `ConvTranspose`.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, new_rows, new_cols, filters), or (batch, filters, new_rows, new_cols).

    Example:
        >>> Conv2DTranspose(3, 4, strides=2, padding="same")(torch.ones(1, 7, 7, 8)).shape
        torch.Size([1, 14, 14, 3])
    """

    rank = 2


class Conv3DTranspose(ConvTranspose):
    """3D transposed convolution. Arguments as `ConvTranspose`.

    Note: Keras' Conv3DTranspose takes `data_format` before `output_padding` positionally;
    here all transposed convolutions share Conv1DTranspose's order (pass them by keyword).

    Input shape: (batch, d1, d2, d3, channels), or (batch, channels, d1, d2, d3).
    Output shape: (batch, n1, n2, n3, filters), or (batch, filters, n1, n2, n3).

    Example:
        >>> Conv3DTranspose(2, 3)(torch.ones(1, 4, 4, 4, 1)).shape
        torch.Size([1, 6, 6, 6, 2])
    """

    rank = 3


# ----------------------------------------------------------------- depthwise and separable
class _DepthwiseBase(BaseConv):
    """A convolution whose first step convolves each input channel on its own with
    `depth_multiplier` kernels (torch: groups = channels)."""

    strided_dilation_allowed = True

    def __init__(self, kernel_size, depth_multiplier=1, depthwise_initializer="glorot_uniform",
                 depthwise_regularizer=None, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.depth_multiplier = positive_int(self, depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)

    def add_depthwise_kernel(self, name, channels):
        self.add_weight(name, (*self.kernel_size, channels, self.depth_multiplier),
                        self.depthwise_initializer,
                        layout=DepthwiseKernelLayout(self.rank, self.depth_multiplier),
                        regularizer=self.depthwise_regularizer)

    def get_config(self):
        return {
            **super().get_config(), "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
        }


class DepthwiseConv(_DepthwiseBase):
    """N-D depthwise convolution: each input channel is convolved with its own
    `depth_multiplier` kernels; there is no mixing across channels.

    DepthwiseConv1D and DepthwiseConv2D are this class with `rank` 1 and 2.

    Args:
        kernel_size, strides, padding ("valid" or "same"), data_format, dilation_rate: see
            `BaseConv`.
        depth_multiplier: output channels per input channel.
        activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
        bias_regularizer: as Keras.

    Output channel c * depth_multiplier + m is input channel c convolved with kernel m. The
    kernel is (*kernel_size, channels, depth_multiplier) in `get_weights()`.
    """

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, depth_multiplier, depthwise_initializer, depthwise_regularizer,
                         strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer, **kwargs)

    def build_weights(self, channels):
        self.add_depthwise_kernel("kernel", channels)
        self.add_bias(channels * self.depth_multiplier)

    def convolve(self, x):
        return self.slide(x, self.kernel, self.bias, groups=x.shape[1])

    def output_channels(self, input_channels):
        return None if input_channels is None else input_channels * self.depth_multiplier


class DepthwiseConv1D(DepthwiseConv):
    """1D depthwise convolution. Arguments as `DepthwiseConv`.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, new_steps, channels * depth_multiplier), or channels first.

    Example:
        >>> DepthwiseConv1D(3, depth_multiplier=2)(torch.ones(2, 10, 4)).shape
        torch.Size([2, 8, 8])
    """

    rank = 1


class DepthwiseConv2D(DepthwiseConv):
    """2D depthwise convolution. Arguments as `DepthwiseConv`.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, new_rows, new_cols, channels * depth_multiplier), or channels first.

    Example:
        >>> DepthwiseConv2D(3, padding="same")(torch.ones(2, 8, 8, 3)).shape
        torch.Size([2, 8, 8, 3])
    """

    rank = 2


class SeparableConv(_DepthwiseBase):
    """N-D depthwise separable convolution: a depthwise convolution (each channel with its own
    `depth_multiplier` kernels) followed by a pointwise (1×…×1) convolution mixing channels into
    `filters` outputs. Far fewer parameters than a full convolution.

    SeparableConv1D and SeparableConv2D are this class with `rank` 1 and 2.

    Args:
        filters: number of output channels.
        kernel_size, strides, padding ("valid" or "same"), data_format, dilation_rate: the
            depthwise step's window; see `BaseConv`.
        depth_multiplier: depthwise outputs per input channel.
        activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
        depthwise_regularizer, pointwise_regularizer, bias_regularizer: as Keras.

    Weights in `get_weights()`: depthwise_kernel (*kernel_size, channels, depth_multiplier),
    pointwise_kernel (1, …, channels * depth_multiplier, filters), bias (filters,).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, depth_multiplier, depthwise_initializer, depthwise_regularizer,
                         strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer, **kwargs)
        self.filters = positive_int(self, filters, "filters")
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)

    def build_weights(self, channels):
        self.add_depthwise_kernel("depthwise_kernel", channels)
        self.add_weight("pointwise_kernel",
                        (*(1,) * self.rank, channels * self.depth_multiplier, self.filters),
                        self.pointwise_initializer, layout=kernel_layout(self.rank),
                        regularizer=self.pointwise_regularizer)
        self.add_bias(self.filters)

    def convolve(self, x):
        y = self.slide(x, self.depthwise_kernel, None, groups=x.shape[1])
        ones = (1,) * self._view.rank
        return convolution(y, self._view.lift_kernel(self.pointwise_kernel), self.bias, ones, 0, ones)

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters,
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
        }


class SeparableConv1D(SeparableConv):
    """1D depthwise separable convolution. Arguments as `SeparableConv`.

    Input shape: (batch, steps, channels), or (batch, channels, steps) for channels_first.
    Output shape: (batch, new_steps, filters), or (batch, filters, new_steps).

    Example:
        >>> SeparableConv1D(16, 5, depth_multiplier=2, padding="same")(torch.ones(2, 50, 3)).shape
        torch.Size([2, 50, 16])
    """

    rank = 1


class SeparableConv2D(SeparableConv):
    """2D depthwise separable convolution. Arguments as `SeparableConv`.

    Input shape: (batch, rows, cols, channels), or (batch, channels, rows, cols).
    Output shape: (batch, new_rows, new_cols, filters), or (batch, filters, new_rows, new_cols).

    Example:
        >>> SeparableConv2D(16, 3)(torch.ones(2, 8, 8, 3)).shape
        torch.Size([2, 6, 6, 16])
    """

    rank = 2


# Keras' alternative names.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
