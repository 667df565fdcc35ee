"""Convolution layers against Keras 3 (outputs, input gradients, output shapes, configs) and
torch's functional convolution (kernels kept in torch's layout)."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamina import layers
from tests.parity import assert_parity, keras


def random_input(rng, spatial, channels, data_format=None, batch=2):
    """Standard-normal float32 input with these spatial axes, laid out by `data_format`."""
    shape = (batch, channels, *spatial) if data_format == "channels_first" else (
        batch, *spatial, channels)
    return rng.standard_normal(shape).astype("float32")


def keras_pair(name, **kwargs):
    """The layer called `name`, built with the same arguments in lamina and in Keras."""
    return getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)


# Each case: layer, input spatial shape, input channels, arguments. Lengths are chosen so that
# "same" padding is sometimes even and sometimes uneven (the odd pixel at the end).
CONV_CASES = [
    ("Conv1D", (9,), 3, dict(filters=4, kernel_size=3)),
    ("Conv1D", (9,), 3, dict(filters=4, kernel_size=4, padding="same")),
    ("Conv1D", (10,), 3, dict(filters=4, kernel_size=3, strides=2, padding="same")),
    ("Conv1D", (9,), 3, dict(filters=4, kernel_size=3, strides=2, padding="same")),
    ("Conv1D", (9,), 2, dict(filters=3, kernel_size=3, dilation_rate=2, padding="causal")),
    ("Conv1D", (10,), 2, dict(filters=3, kernel_size=2, strides=3, padding="causal")),
    ("Conv1D", (11,), 2, dict(filters=3, kernel_size=4, dilation_rate=2, padding="same")),
    ("Conv1D", (8,), 4, dict(filters=6, kernel_size=3, groups=2, padding="same")),
    ("Conv1D", (9,), 3, dict(filters=4, kernel_size=4, strides=2, padding="same",
                             data_format="channels_first")),
    ("Conv1D", (7,), 3, dict(filters=2, kernel_size=2, padding="causal", data_format="channels_first",
                             activation="tanh")),
    ("Conv1D", (7,), 3, dict(filters=5, kernel_size=1, use_bias=False, activation="softmax")),
    ("Conv2D", (7, 6), 3, dict(filters=4, kernel_size=(3, 2), strides=(2, 1), padding="same")),
    ("Conv2D", (5, 6), 2, dict(filters=3, kernel_size=2, strides=2, padding="same",
                               data_format="channels_first")),
    ("Conv2D", (7, 5), 3, dict(filters=6, kernel_size=3, dilation_rate=(2, 1), groups=3,
                               activation="relu")),
    ("Conv3D", (3, 4, 5), 2, dict(filters=3, kernel_size=2, padding="same")),
    ("Conv3D", (5, 4, 4), 2, dict(filters=3, kernel_size=(3, 2, 2), strides=2,
                                  data_format="channels_first")),
]


@pytest.mark.parametrize("name, spatial, channels, kwargs", CONV_CASES)
def test_conv_matches_keras(name, spatial, channels, kwargs, rng):
    x = random_input(rng, spatial, channels, kwargs.get("data_format"))
    assert_parity(*keras_pair(name, **kwargs), x)


def test_conv1d_transpose_matches_keras_across_crops(rng):
    """Every kernel/stride/padding/output_padding mix: torch's own padding where it can express
    Keras' crop, a slice afterwards where it cannot, zeros appended where Keras extends."""
    x = random_input(rng, (5,), 2)
    for kernel, stride, padding in itertools.product((1, 2, 3, 4), (1, 2, 3), ("valid", "same")):
        for output_padding in sorted({None, 0, stride - 1}, key=str):
            kwargs = dict(filters=3, kernel_size=kernel, strides=stride, padding=padding,
                          output_padding=output_padding)
            assert_parity(*keras_pair("Conv1DTranspose", **kwargs), x)


TRANSPOSE_CASES = [
    ("Conv1DTranspose", (6,), 2, dict(filters=3, kernel_size=3, dilation_rate=2, padding="same")),
    ("Conv1DTranspose", (6,), 2, dict(filters=3, kernel_size=2, dilation_rate=3)),
    ("Conv1DTranspose", (5,), 2, dict(filters=3, kernel_size=3, strides=2, padding="same",
                                      data_format="channels_first", activation="relu")),
    ("Conv2DTranspose", (4, 5), 3, dict(filters=2, kernel_size=(3, 4), strides=(2, 1),
                                        padding="same", data_format="channels_first")),
    ("Conv2DTranspose", (4, 3), 2, dict(filters=2, kernel_size=3, strides=2, output_padding=1,
                                        use_bias=False)),
    ("Conv3DTranspose", (2, 3, 2), 2, dict(filters=2, kernel_size=2, strides=2, padding="same")),
    ("Conv3DTranspose", (3, 2, 2), 2, dict(filters=2, kernel_size=3, strides=(1, 2, 1),
                                           output_padding=(0, 1, 0))),
]

DEPTHWISE_CASES = [
    ("DepthwiseConv1D", (9,), 3, dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same")),
    ("DepthwiseConv1D", (9,), 3, dict(kernel_size=2, dilation_rate=2, data_format="channels_first")),
    ("DepthwiseConv2D", (6, 5), 2, dict(kernel_size=(3, 2), depth_multiplier=2, strides=(2, 1),
                                        padding="same", activation="relu")),
    ("SeparableConv1D", (10,), 3, dict(filters=4, kernel_size=3, depth_multiplier=2, strides=2,
                                       padding="same")),
    ("SeparableConv1D", (9,), 2, dict(filters=4, kernel_size=3, dilation_rate=2, padding="same",
                                      data_format="channels_first")),
    ("SeparableConv2D", (5, 6), 3, dict(filters=4, kernel_size=3, padding="same")),
    ("SeparableConv2D", (6, 6), 2, dict(filters=3, kernel_size=2, depth_multiplier=2, strides=2,
                                        data_format="channels_first", use_bias=False)),
]


@pytest.mark.parametrize("name, spatial, channels, kwargs", TRANSPOSE_CASES + DEPTHWISE_CASES)
def test_transposed_depthwise_separable_match_keras(name, spatial, channels, kwargs, rng):
    x = random_input(rng, spatial, channels, kwargs.get("data_format"))
    assert_parity(*keras_pair(name, **kwargs), x)


def test_conv_regularization_losses_match_keras(rng):
    kwargs = dict(filters=3, kernel_size=2, kernel_regularizer="l2", bias_regularizer="l1",
                  bias_initializer="ones")
    ours, theirs = keras_pair("Conv1D", **kwargs)
    x = random_input(rng, (5,), 2)
    assert_parity(ours, theirs, x)
    expected = sum(float(loss.detach()) for loss in theirs.losses)
    assert sum(float(loss.detach()) for loss in ours.losses) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------- output shapes
SHAPE_CASES = [
    ("Conv1D", dict(filters=4, kernel_size=3), [(None, None, 3), (None, 9, 3), (5, 3, 3)]),
    ("Conv1D", dict(filters=4, kernel_size=4, strides=3, padding="causal"), [(None, 10, 2)]),
    ("Conv1D", dict(filters=4, kernel_size=3, dilation_rate=3, data_format="channels_first"),
     [(None, 2, 11), (None, 2, None)]),
    ("Conv2D", dict(filters=4, kernel_size=(3, 2), strides=(2, 3), padding="same"),
     [(None, None, 8, 3), (2, 9, 8, 3)]),
    ("Conv3D", dict(filters=2, kernel_size=2, strides=2), [(None, 5, None, 6, 1)]),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, strides=2), [(None, None, 3), (None, 5, 3)]),
    ("Conv1DTranspose", dict(filters=2, kernel_size=4, strides=3, padding="same", output_padding=1),
     [(None, 5, 3)]),
    ("Conv2DTranspose", dict(filters=2, kernel_size=2, strides=3, data_format="channels_first"),
     [(None, 3, 4, None)]),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=(1, 2, 2), padding="same"),
     [(None, 3, 4, 5, 1)]),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=3, strides=2), [(None, 9, None, 2)]),
    ("SeparableConv1D", dict(filters=5, kernel_size=3, strides=2, padding="same"), [(None, 9, 4)]),
]


@pytest.mark.parametrize("name, kwargs, shapes", SHAPE_CASES)
def test_output_shapes_match_keras(name, kwargs, shapes):
    ours, theirs = keras_pair(name, **kwargs)
    for shape in shapes:
        assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape)), shape


def test_symbolic_call_propagates_unknown_lengths():
    inputs = layers.Input((None, 3))
    hidden = layers.Conv1D(8, 5, strides=2, padding="same")(inputs)
    outputs = layers.Conv1DTranspose(4, 3, strides=2, padding="same")(hidden)
    assert hidden.shape == (None, None, 8) and outputs.shape == (None, None, 4)


# ----------------------------------------------------------------- weights in torch's layout
def test_conv2d_kernel_is_kept_in_torch_layout(rng):
    """The stored kernel feeds F.conv2d as it is; get_weights gives Keras' (kh, kw, in, out)."""
    layer = layers.Conv2D(4, (3, 2), data_format="channels_first")
    x = torch.tensor(random_input(rng, (6, 5), 3, "channels_first"))
    y = layer(x)
    assert tuple(layer.kernel.shape) == (4, 3, 3, 2)
    torch.testing.assert_close(y, F.conv2d(x, layer.kernel, layer.bias))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2, 3, 4) and bias.shape == (4,)
    np.testing.assert_array_equal(kernel, layer.kernel.detach().numpy().transpose(2, 3, 1, 0))


def test_depthwise_weights_round_trip_in_keras_layout(rng):
    layer = layers.SeparableConv1D(4, 3, depth_multiplier=2)
    layer(torch.zeros(1, 8, 3))
    weights = [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    assert [w.shape for w in weights] == [(3, 3, 2), (1, 6, 4), (4,)]
    layer.set_weights(weights)
    for got, expected in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(got, expected)
    assert tuple(layer.depthwise_kernel.shape) == (6, 1, 3)


# ----------------------------------------------------------------- config
CONFIG_KEYS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
               "groups", "use_bias", "output_padding", "depth_multiplier")


@pytest.mark.parametrize("name, kwargs", [
    ("Conv1D", dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2, activation="relu",
                    kernel_regularizer="l2")),
    ("Conv2D", dict(filters=4, kernel_size=(3, 1), strides=2, groups=2, use_bias=False)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=3, strides=2, output_padding=1)),
    ("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=2)),
    ("SeparableConv2D", dict(filters=3, kernel_size=2, data_format="channels_first")),
])
def test_config_round_trips_and_matches_keras(name, kwargs):
    ours, theirs = keras_pair(name, **kwargs)
    config = ours.get_config()
    assert type(ours).from_config(config).get_config() == config
    keras_config = theirs.get_config()
    for key in CONFIG_KEYS:
        if key in keras_config:
            assert config[key] == keras_config[key], key
    assert config["activation"] == keras_config["activation"]


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("name, kwargs, message", [
    ("Conv1D", dict(filters=0, kernel_size=3), r"Conv1D: `filters` must be a positive int.*filters=0"),
    ("Conv1D", dict(filters=2.5, kernel_size=3), r"`filters`.*filters=2.5"),
    ("Conv1D", dict(filters=2, kernel_size=(3, 3)), r"`kernel_size` must be an int or a tuple of 1"),
    ("Conv2D", dict(filters=2, kernel_size=(3, 0)), r"Conv2D: `kernel_size`.*\(3, 0\)"),
    ("DepthwiseConv2D", dict(kernel_size="3"), r"`kernel_size`.*'3'"),
    ("Conv1D", dict(filters=2, kernel_size=3, padding="full"), r"`padding` must be one of.*'full'"),
    ("Conv2D", dict(filters=2, kernel_size=3, padding="causal"), r"Conv2D.*'causal' is for Conv1D"),
    ("Conv1D", dict(filters=6, kernel_size=3, groups=4), r"divisible by `groups`.*groups=4"),
    ("Conv1D", dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), r"strides > 1 cannot"),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=2),
     r"`output_padding` must be smaller than its stride"),
    ("Conv2D", dict(filters=2, kernel_size=3, data_format="nhwc"), r"`data_format`.*'nhwc'"),
    ("SeparableConv1D", dict(filters=2, kernel_size=3, depth_multiplier=0), r"`depth_multiplier`"),
])
def test_bad_arguments_raise_at_construction(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(layers, name)(**kwargs)


def test_wrong_input_rank_names_the_layer():
    layer = layers.Conv1D(4, 3, name="price_conv")
    with pytest.raises(ValueError, match=r"layer 'price_conv'.*expected ndim=3, found ndim=2"):
        layer(torch.zeros(2, 10))


def test_wrong_channel_count_after_build_names_the_layer():
    layer = layers.Conv2D(4, 3, name="image_conv")
    layer(torch.zeros(1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"layer 'image_conv'.*axis -1.*value 3"):
        layer(torch.zeros(1, 5, 5, 4))


def test_channels_not_divisible_by_groups_names_the_layer():
    with pytest.raises(ValueError, match=r"Conv1D 'grouped'.*5 channels.*groups=2"):
        layers.Conv1D(4, 3, groups=2, name="grouped")(torch.zeros(1, 8, 5))


def test_input_shorter_than_kernel_names_the_layer():
    layer = layers.Conv1D(4, 5, name="short")
    with pytest.raises(ValueError, match=r"Conv1D 'short'.*too small.*kernel_size=\(5,\)"):
        layer(torch.zeros(1, 3, 2))
    layer(torch.zeros(1, 8, 2))  # built on a long enough input, then called on a short one
    with pytest.raises(ValueError, match=r"Conv1D 'short'.*\(1, 4, 2\) is too small"):
        layer(torch.zeros(1, 4, 2))


@pytest.mark.parametrize("shape, flat, fmt", [
    ((2, 5, 1, 9), (3, 4), torch.channels_last),              # a lifted Conv1D input, uneven "same"
    ((2, 5, 6, 7), (1, 2, 0, 1), torch.channels_last),
    ((2, 3, 4, 5, 6), (2, 0, 1, 1, 0, 3), torch.channels_last_3d),
])
def test_padding_that_keeps_channels_last_memory_equals_f_pad(shape, flat, fmt):
    """The padding the CUDA path uses (there F.pad would return NCHW and cuDNN copy it back):
    F.pad's values and gradients, in channels_last memory."""
    from lamina.layers.conv import pad_keeping_format

    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    ours = pad_keeping_format(x, flat, -1.5, fmt)
    theirs = F.pad(x, flat, value=-1.5)
    assert ours.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    cotangent = torch.randn(theirs.shape)
    (g_ours,) = torch.autograd.grad(ours, x, cotangent)
    (g_theirs,) = torch.autograd.grad(theirs, x, cotangent)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=5, padding="same"), dict(kernel_size=8, padding="same"),
                                    dict(kernel_size=3, padding="causal", dilation_rate=2),
                                    dict(kernel_size=5, strides=2)])
def test_one_sample_conv1d_inference_through_onednn_matches_torch(kwargs, monkeypatch, rng):
    """A single channels_last sample with enough work goes to oneDNN directly at inference (torch
    would send it to its im2col kernel): the result is torch's conv1d on the channels-first input,
    and the route was taken."""
    from lamina.kernels import conv as conv_module

    calls = []
    real = torch.mkldnn_convolution
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *a: calls.append(a) or real(*a))
    layer = layers.Conv1D(256, **kwargs)
    x = torch.as_tensor(rng.standard_normal((1, 150, 128)).astype("float32"))
    layer(x)
    assert conv_module.onednn_for_one_sample(
        layer._view.to_torch(x), layer.kernel.unsqueeze(2), 1, layer._torch_strides) is False  # grads on
    assert not calls
    with torch.no_grad():
        out = layer(x)
    assert len(calls) == (1 if torch.backends.mkldnn.is_available() else 0)
    window = (kwargs["kernel_size"] - 1) * kwargs.get("dilation_rate", 1)
    xt = x.transpose(1, 2)
    if kwargs.get("padding") == "same":
        xt = F.pad(xt, (window // 2, window - window // 2))
    elif kwargs.get("padding") == "causal":
        xt = F.pad(xt, (window, 0))
    expected = F.conv1d(xt, layer.kernel, layer.bias, stride=kwargs.get("strides", 1),
                        dilation=kwargs.get("dilation_rate", 1)).transpose(1, 2)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # a batch of two takes torch's own route (oneDNN by torch's choice)
        torch.testing.assert_close(layer(x.expand(2, -1, -1))[1], expected[0], rtol=1e-4, atol=1e-4)
    assert len(calls) == (1 if torch.backends.mkldnn.is_available() else 0)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN")
def test_single_sample_route_follows_every_weight_change(rng):
    """oneDNN's single-sample route reads the kernel as it is after an in-place change
    (set_weights, an optimizer step), a replaced .data (here not channels_last: the route copies
    it) and a model.double() round trip; each prediction against F.conv1d in float64."""
    layer = layers.Conv1D(256, 5, padding="same")
    x = torch.as_tensor(rng.standard_normal((1, 150, 128)).astype("float32"))
    layer(x)

    def check():
        with torch.inference_mode():
            out = layer(x)
        xt = F.pad(x.double().transpose(1, 2), (2, 2))
        expected = F.conv1d(xt, layer.kernel.detach().double(), layer.bias.detach().double())
        torch.testing.assert_close(out.double(), expected.transpose(1, 2), rtol=1e-4, atol=1e-4)

    check()
    weights = layer.get_weights()
    layer.set_weights([w * -0.5 for w in weights])
    check()
    with torch.no_grad():
        layer.kernel.add_(0.25)  # what an optimizer step does
    check()
    layer.kernel.data = torch.randn(layer.kernel.shape)
    check()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).square().mean().backward()
    optimizer.step()
    check()
    layer.double().float()
    check()


@pytest.mark.parametrize("cls, data_shape", [(layers.Conv1D, (4, 9, 3)), (layers.Conv2D, (4, 7, 6, 3)),
                                              (layers.Conv3D, (2, 5, 4, 6, 3))])
def test_a_channels_last_kernel_is_kept_in_channels_last_order(cls, data_shape, rng):
    """The kernel of a channels_last convolution is stored (filters, *kernel_size, in) in memory,
    the order oneDNN and cuDNN take it in for channels_last activations: a training step copies
    it once, inside torch's oneDNN backward (counted with torch's profiler), its gradient arrives
    in the weight's own strides, and values, gradients and get_weights are those of the plain
    layout (torch's conv in float64)."""
    layer = cls(5, 3, padding="same")
    x = torch.as_tensor(rng.standard_normal(data_shape).astype("float32"))
    layer(x)
    kernel = layer.kernel
    assert kernel.movedim(1, -1).is_contiguous()
    lifted = layer._view.lift_kernel(kernel)  # what the convolution op receives
    if lifted.dim() == 4:  # so the single-sample oneDNN route's channels_last view is no copy
        assert lifted.contiguous(memory_format=torch.channels_last).data_ptr() == kernel.data_ptr()
        assert lifted.is_contiguous(memory_format=torch.channels_last)
    keras_kernel = layer.get_weights()[0]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.dim() - 2]
    xt = x.double().movedim(-1, 1).requires_grad_()
    plain = kernel.detach().double().contiguous().requires_grad_()
    expected = conv(xt, plain, layer.bias.detach().double(), padding="same").movedim(1, -1)
    expected.square().sum().backward()
    np.testing.assert_array_equal(keras_kernel, plain.detach().float().permute(
        *range(2, x.dim()), 1, 0).numpy())
    with torch.profiler.profile(record_shapes=True) as profile:
        out = layer(x)
        out.square().sum().backward()
    torch.testing.assert_close(out.double(), expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kernel.grad.double(), plain.grad, rtol=1e-4, atol=1e-4)
    assert kernel.grad.stride() == kernel.stride()
    copied = [e.input_shapes for e in profile.events() if e.name == "aten::copy_"
              and math.prod(e.input_shapes[0]) == kernel.numel()]
    # torch's oneDNN backward makes one copy of its own; a contiguous kernel cost 2 to 3 more
    # (before each convolution, forward and backward, and the gradient's to the weight's order)
    assert len(copied) <= 1, copied
    layer.set_weights(layer.get_weights())
    assert layer.kernel.movedim(1, -1).is_contiguous()  # set_weights keeps the order
    channels_first = cls(5, 3, data_format="channels_first")
    channels_first(x.movedim(-1, 1))
    assert channels_first.kernel.is_contiguous()
