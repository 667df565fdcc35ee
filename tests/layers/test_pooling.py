"""Pooling layers against Keras 3 (outputs, input gradients, output shapes, configs), a plain
window-by-window average for uneven "same" padding, and hand-computed masked means."""

import itertools

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from tests.layers.test_conv import keras_pair, random_input
from tests.parity import assert_parity, run_lamina

# Layer, input spatial shape, arguments. "same" cases here pad both ends equally, or pad one
# position at the end of a window of 2 (where Keras' torch backend agrees with TF/JAX).
WINDOW_CASES = [
    ("1D", (9,), dict(pool_size=2)),
    ("1D", (9,), dict(pool_size=3, strides=2, padding="same")),
    ("1D", (7,), dict(pool_size=2, strides=1, padding="same", data_format="channels_first")),
    ("1D", (8,), dict(pool_size=3, strides=1)),
    ("2D", (7, 6), dict(pool_size=(3, 2), strides=(1, 2), padding="same")),
    ("2D", (5, 6), dict(pool_size=2, data_format="channels_first")),
    ("3D", (3, 4, 5), dict(pool_size=2, strides=1, padding="same")),
    ("3D", (4, 4, 5), dict(pool_size=(2, 2, 3), data_format="channels_first")),
]


@pytest.mark.parametrize("kind", ["MaxPooling", "AveragePooling"])
@pytest.mark.parametrize("rank, spatial, kwargs", WINDOW_CASES)
def test_window_pooling_matches_keras(kind, rank, spatial, kwargs, rng):
    x = random_input(rng, spatial, 3, kwargs.get("data_format"))
    assert_parity(*keras_pair(kind + rank, **kwargs), x)


@pytest.mark.parametrize("rank, spatial, kwargs", [
    ("1D", (9,), dict(pool_size=4, strides=1, padding="same")),
    ("2D", (5, 6), dict(pool_size=(4, 3), strides=(1, 2), padding="same")),
    ("3D", (3, 4, 4), dict(pool_size=(4, 2, 3), strides=(1, 2, 2), padding="same",
                           data_format="channels_first")),
])
def test_max_pooling_with_uneven_same_padding_matches_keras(rank, spatial, kwargs, rng):
    x = random_input(rng, spatial, 3, kwargs.get("data_format"))
    assert_parity(*keras_pair("MaxPooling" + rank, **kwargs), x)


def _mean_of_real_inputs(x, pool_size, strides, data_format):
    """Average pooling with "same" padding, window by window: each output is the mean of the
    inputs its window covers; Keras' rule puts the odd pixel of padding at the end."""
    if data_format == "channels_last":
        x = x.movedim(-1, 1)
    spatial = x.shape[2:]
    out_shape = [-(-n // s) for n, s in zip(spatial, strides)]
    before = [max((o - 1) * s + k - n, 0) // 2
              for o, s, k, n in zip(out_shape, strides, pool_size, spatial)]
    out = torch.empty(*x.shape[:2], *out_shape, dtype=x.dtype)
    for index in itertools.product(*map(range, out_shape)):
        window = tuple(slice(max(i * s - b, 0), i * s - b + k)
                       for i, s, b, k in zip(index, strides, before, pool_size))
        out[(..., *index)] = x[(..., *window)].flatten(2).mean(-1)
    return out.movedim(1, -1) if data_format == "channels_last" else out


def test_average_pooling_same_excludes_padding_from_the_mean():
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)
    y = layers.AveragePooling1D(4, strides=1, padding="same")(x)
    # windows (pad before 1, 2 after): [_,1,2,3] [1,2,3,4] [2,3,4,5] [3,4,5,_] [4,5,_,_]
    np.testing.assert_allclose(y.ravel().numpy(), [2.0, 2.5, 3.5, 4.0, 4.5])


@pytest.mark.parametrize("rank, spatial, kwargs", [
    ("1D", (9,), dict(pool_size=4, strides=1)),
    ("1D", (10,), dict(pool_size=3, strides=2, data_format="channels_first")),
    ("2D", (5, 6), dict(pool_size=(4, 3), strides=(1, 2))),
    ("2D", (6, 7), dict(pool_size=(2, 3), strides=(1, 2))),
    ("3D", (3, 4, 4), dict(pool_size=(4, 2, 3), strides=(1, 2, 2), data_format="channels_first")),
])
def test_average_pooling_with_uneven_same_padding_matches_window_means(rank, spatial, kwargs, rng):
    data_format = kwargs.get("data_format", "channels_last")
    x = random_input(rng, spatial, 3, data_format)
    layer = getattr(layers, "AveragePooling" + rank)(padding="same", **kwargs)
    (ours,), (our_grad,) = run_lamina(layer, x)
    xt = torch.tensor(x, requires_grad=True)
    expected = _mean_of_real_inputs(xt, layer.pool_size, layer.strides, data_format)
    np.testing.assert_allclose(ours, expected.detach().numpy(), atol=1e-6)
    cotangent = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1234))
    (expected_grad,) = torch.autograd.grad((expected * cotangent).sum(), xt)
    np.testing.assert_allclose(our_grad, expected_grad.numpy(), atol=1e-6)


# ----------------------------------------------------------------- global pooling
@pytest.mark.parametrize("kind", ["GlobalAveragePooling", "GlobalMaxPooling"])
@pytest.mark.parametrize("rank, spatial", [("1D", (6,)), ("2D", (4, 5)), ("3D", (3, 2, 4))])
def test_global_pooling_matches_keras(kind, rank, spatial, rng):
    for keepdims, data_format in itertools.product((False, True), ("channels_last", "channels_first")):
        x = random_input(rng, spatial, 3, data_format)
        assert_parity(*keras_pair(kind + rank, keepdims=keepdims, data_format=data_format), x)


def test_masked_global_average_pooling_averages_unmasked_steps(rng):
    x = torch.tensor(random_input(rng, (5,), 3), requires_grad=True)
    mask = torch.tensor([[True, True, False, False, True], [True] * 5])
    y = layers.GlobalAveragePooling1D()(x, mask=mask)
    expected = torch.stack([x[0, [0, 1, 4]].mean(0), x[1].mean(0)])
    torch.testing.assert_close(y, expected)
    y.sum().backward()
    assert torch.all(x.grad[0, 2:4] == 0) and torch.all(x.grad[0, [0, 1, 4]] == 1 / 3)


def test_masked_global_average_pooling_matches_keras_channels_first_keepdims(rng):
    x = random_input(rng, (6,), 2, "channels_first")
    mask = np.array([[1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]], dtype=bool)
    kwargs = dict(data_format="channels_first", keepdims=True)
    assert_parity(*keras_pair("GlobalAveragePooling1D", **kwargs), x, mask=torch.tensor(mask))


def test_mask_carried_on_the_tensor_is_honoured(rng):
    x = torch.tensor(random_input(rng, (4,), 2))
    x._lamina_mask = torch.tensor([[True, False, False, False], [True, True, False, False]])
    y = layers.GlobalAveragePooling1D()(x)
    torch.testing.assert_close(y, torch.stack([x[0, 0], x[1, :2].mean(0)]))
    assert getattr(y, "_lamina_mask", None) is None


def test_mask_from_a_masking_layer_reaches_global_average_pooling():
    inputs = layers.Input((4, 2))
    outputs = layers.GlobalAveragePooling1D()(layers.Masking(0.0)(inputs))
    x = np.array([[[1, 2], [3, 4], [0, 0], [0, 0]], [[1, 1], [0, 0], [5, 5], [0, 3]]], "float32")
    y = lamina.Model(inputs, outputs).predict(x, verbose=0)
    np.testing.assert_allclose(y, [[2, 3], [2, 3]])


def test_mask_of_the_wrong_shape_names_the_layer():
    layer = layers.GlobalAveragePooling1D(name="gap")
    with pytest.raises(ValueError, match=r"'gap': the mask must have shape \(batch, steps\) = \(2, 4\)"):
        layer(torch.zeros(2, 4, 3), mask=torch.ones(2, 3, dtype=torch.bool))


# ----------------------------------------------------------------- shapes, config, errors
@pytest.mark.parametrize("name, kwargs, shapes", [
    ("MaxPooling1D", dict(), [(None, None, 3), (None, 9, 3), (4, 2, 1)]),
    ("AveragePooling1D", dict(pool_size=3, strides=2, padding="same",
                              data_format="channels_first"), [(None, 3, 10), (None, 3, None)]),
    ("MaxPooling2D", dict(pool_size=(3, 2), strides=1), [(None, None, 7, 2)]),
    ("AveragePooling3D", dict(pool_size=2, padding="same"), [(None, 5, None, 3, 1)]),
    ("GlobalAveragePooling1D", dict(keepdims=True), [(None, None, 4)]),
    ("GlobalMaxPooling3D", dict(data_format="channels_first"), [(None, 2, 3, None, 5)]),
])
def test_output_shapes_match_keras(name, kwargs, shapes):
    ours, theirs = keras_pair(name, **kwargs)
    for shape in shapes:
        assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape)), shape


@pytest.mark.parametrize("name, kwargs", [
    ("MaxPooling1D", dict(pool_size=3, strides=1, padding="same")),
    ("AveragePooling2D", dict(pool_size=(2, 3), data_format="channels_first")),
    ("GlobalAveragePooling1D", dict(keepdims=True)),
    ("GlobalMaxPooling2D", dict(data_format="channels_first")),
])
def test_config_round_trips_and_matches_keras(name, kwargs):
    ours, theirs = keras_pair(name, **kwargs)
    config = ours.get_config()
    assert type(ours).from_config(config).get_config() == config
    keras_config = theirs.get_config()
    for key in ("pool_size", "strides", "padding", "data_format", "keepdims"):
        if key in keras_config:
            assert config[key] == keras_config[key], key


def test_default_pool_sizes_and_strides_follow_keras():
    assert layers.MaxPooling2D().pool_size == (2, 2) == layers.MaxPooling2D().strides
    assert layers.AveragePooling1D(3).strides == (3,)
    assert layers.MaxPool3D is layers.MaxPooling3D and layers.GlobalAvgPool1D is layers.GlobalAveragePooling1D


@pytest.mark.parametrize("name, kwargs, message", [
    ("MaxPooling1D", dict(pool_size=0), r"MaxPooling1D: `pool_size` must be.*pool_size=0"),
    ("MaxPooling1D", dict(pool_size=(2, 2)), r"`pool_size` must be an int or a tuple of 1"),
    ("AveragePooling2D", dict(pool_size=2, strides=(1, 0)), r"`strides`.*\(1, 0\)"),
    ("MaxPooling2D", dict(padding="causal"), r"`padding` must be one of 'valid', 'same'"),
    ("GlobalAveragePooling2D", dict(data_format="NCHW"), r"`data_format`.*'NCHW'"),
])
def test_bad_arguments_raise_at_construction(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(layers, name)(**kwargs)


@pytest.mark.parametrize("layer", [layers.MaxPooling2D(name="pool"),
                                   layers.GlobalMaxPooling2D(name="pool")])
def test_wrong_input_rank_names_the_layer(layer):
    with pytest.raises(ValueError, match=r"layer 'pool'.*expected ndim=4, found ndim=3"):
        layer(torch.zeros(2, 5, 3))


def test_input_smaller_than_the_window_names_the_layer():
    layer = layers.AveragePooling1D(4, name="coarse")
    with pytest.raises(ValueError, match=r"AveragePooling1D 'coarse'.*too small.*pool_size=\(4,\)"):
        layer(torch.zeros(1, 3, 2))
    layer(torch.zeros(1, 8, 2))  # built on a long enough input, then called on a short one
    with pytest.raises(ValueError, match=r"'coarse'.*\(1, 2, 2\) is too small"):
        layer(torch.zeros(1, 2, 2))
