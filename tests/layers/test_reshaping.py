import pytest
import torch

from lamina import layers
from tests.parity import assert_parity, keras

# (layer name, constructor kwargs, input shape): every option of every reshaping layer, small.
CASES = [
    ("Flatten", {}, (2, 3, 4)),
    ("Flatten", {}, (2, 5)),
    ("Flatten", {"data_format": "channels_first"}, (2, 3, 4, 2)),
    ("Reshape", {"target_shape": (4, 3)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (-1, 2)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (2, -1, 3)}, (2, 12)),
    ("Permute", {"dims": (2, 1)}, (2, 3, 4)),
    ("Permute", {"dims": (3, 1, 2)}, (2, 3, 4, 5)),
    ("RepeatVector", {"n": 3}, (2, 4)),
    ("Cropping1D", {}, (2, 6, 3)),
    ("Cropping1D", {"cropping": (2, 0)}, (2, 6, 3)),
    ("Cropping1D", {"cropping": 2}, (2, 6, 3)),
    ("Cropping2D", {"cropping": ((1, 2), (0, 1))}, (2, 5, 6, 3)),
    ("Cropping2D", {"cropping": (1, 2), "data_format": "channels_first"}, (2, 3, 5, 6)),
    ("Cropping2D", {"cropping": 1}, (2, 4, 4, 2)),
    ("Cropping3D", {}, (1, 4, 5, 4, 2)),
    ("Cropping3D", {"cropping": ((0, 1), 1, (2, 0)), "data_format": "channels_first"}, (1, 2, 4, 5, 4)),
    ("ZeroPadding1D", {}, (2, 4, 3)),
    ("ZeroPadding1D", {"padding": (2, 0)}, (2, 4, 3)),
    ("ZeroPadding1D", {"padding": 1, "data_format": "channels_first"}, (2, 3, 4)),
    ("ZeroPadding2D", {}, (2, 3, 4, 2)),
    ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}, (2, 3, 4, 2)),
    ("ZeroPadding2D", {"padding": (1, 2), "data_format": "channels_first"}, (2, 2, 3, 4)),
    ("ZeroPadding3D", {}, (1, 2, 3, 2, 2)),
    ("ZeroPadding3D", {"padding": (0, 1, 2), "data_format": "channels_first"}, (1, 2, 2, 3, 2)),
    ("UpSampling1D", {}, (2, 4, 3)),
    ("UpSampling1D", {"size": 3}, (2, 4, 3)),
    ("UpSampling2D", {}, (2, 3, 4, 2)),
    ("UpSampling2D", {"size": (2, 3), "data_format": "channels_first"}, (2, 2, 3, 4)),
    ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}, (2, 3, 4, 2)),
    ("UpSampling2D", {"size": 2, "interpolation": "bicubic", "data_format": "channels_first"},
     (2, 2, 3, 4)),
    ("UpSampling3D", {}, (1, 2, 3, 2, 2)),
    ("UpSampling3D", {"size": (1, 2, 3), "data_format": "channels_first"}, (1, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_matches_keras(name, kwargs, shape, rng):
    x = rng.standard_normal(shape).astype("float32")
    assert_parity(getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs), x)


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_output_shape_with_unknown_axes_matches_keras(name, kwargs, shape):
    """Symbolic shapes: the batch axis and, where the layer allows it, one more axis unknown."""
    symbolic = (None, *shape[1:])
    if name not in ("RepeatVector", "Flatten") and len(shape) > 2 and not kwargs.get("data_format"):
        symbolic = (None, None, *shape[2:])
    got = getattr(layers, name)(**kwargs).compute_output_shape(symbolic)
    expected = getattr(keras.layers, name)(**kwargs).compute_output_shape(symbolic)
    assert tuple(got) == tuple(expected)


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_config_round_trips_and_reads_keras_config(name, kwargs, shape):
    layer = getattr(layers, name)(**kwargs)
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    from_keras = getattr(layers, name).from_config(getattr(keras.layers, name)(**kwargs).get_config())
    x = torch.randn(shape)
    torch.testing.assert_close(from_keras(x), layer(x), rtol=0, atol=0)


def test_functional_model_shapes():
    inp = layers.Input((6, 4))
    h = layers.Permute((2, 1))(inp)
    h = layers.Flatten()(h)
    h = layers.Reshape((3, -1))(h)
    h = layers.UpSampling1D(2)(layers.ZeroPadding1D(1)(layers.Cropping1D(1)(h)))
    assert h.shape == (None, 6, 8)
    assert layers.RepeatVector(5)(layers.Flatten()(inp)).shape == (None, 5, 24)


def test_repeat_vector_copies_each_sample():
    x = torch.arange(6.0).reshape(2, 3)
    out = layers.RepeatVector(2)(x)
    torch.testing.assert_close(out, torch.stack([x, x], dim=1))


def test_flatten_accepts_an_empty_batch():
    assert layers.Flatten()(torch.zeros(0, 3, 4)).shape == (0, 12)


def test_reshape_size_mismatch_names_the_layer():
    layer = layers.Reshape((5, 5), name="to_square")
    with pytest.raises(ValueError, match=r"Reshape 'to_square'.*\(3, 4\) \(12 values\)"):
        layer(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="Reshape 'symbolic'"):
        layers.Reshape((5, 5), name="symbolic")(layers.Input((12,)))


@pytest.mark.parametrize("target_shape", [(-1, -1), (0, 3), 12, ("a", 3)])
def test_reshape_rejects_bad_target_shape(target_shape):
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape(target_shape)


@pytest.mark.parametrize("dims", [(0, 1), (1, 1), (2, 3), 2])
def test_permute_rejects_non_permutation(dims):
    with pytest.raises(ValueError, match="permutation of 1..n"):
        layers.Permute(dims)


def test_permute_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"layer 'swap'.*expected ndim=3"):
        layers.Permute((2, 1), name="swap")(torch.zeros(2, 3, 4, 5))


def test_cropping_everything_is_an_error():
    with pytest.raises(ValueError, match=r"Cropping1D 'crop'.*removes 6 of the 6 steps"):
        layers.Cropping1D(3, name="crop")(torch.zeros(1, 6, 2))
    with pytest.raises(ValueError, match="Cropping2D"):
        layers.Cropping2D(((2, 2), (0, 0)))(layers.Input((4, 5, 1)))


@pytest.mark.parametrize("cls,arg,value", [
    ("Cropping1D", "cropping", -1), ("Cropping2D", "cropping", (1, 2, 3)),
    ("ZeroPadding1D", "padding", (1, 2, 3)), ("ZeroPadding2D", "padding", ((1, -1), 2)),
    ("ZeroPadding3D", "padding", "same"), ("UpSampling1D", "size", 0),
    ("UpSampling2D", "size", (2, 2, 2)), ("RepeatVector", "n", 0),
])
def test_bad_arguments_name_the_argument(cls, arg, value):
    with pytest.raises(ValueError, match=rf"{cls}: `{arg}` must be"):
        getattr(layers, cls)(**{arg: value})


def test_bad_data_format_and_interpolation():
    with pytest.raises(ValueError, match="data_format"):
        layers.ZeroPadding2D(data_format="NHWC")
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="lanczos3")


def test_masks_do_not_pass_reshaping_layers():
    x = torch.ones(2, 3, 4)
    x._lamina_mask = torch.ones(2, 3, dtype=torch.bool)
    assert getattr(layers.Flatten()(x), "_lamina_mask", None) is None
