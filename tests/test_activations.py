"""Activation functions and layers against Keras 3 (torch backend): values and input gradients."""

import numpy as np
import pytest
import torch

from lamina import activations, layers, losses
from tests.parity import assert_parity, keras

# Arguments for the functions that need some (Keras' `threshold` has no defaults).
REQUIRED = {"threshold": {"threshold": 0.5, "default_value": -1.0}}
KERAS_NAMES = sorted(set(activations._NAMES) - {"sparsemax"})  # Keras' sparsemax is wrong, below


def _value_and_grad(fn, x, **kwargs):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t, **kwargs)
    cotangent = torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(x.dtype))
    (grad,) = torch.autograd.grad((out * cotangent).sum(), t)
    return out.detach().numpy(), grad.numpy()


def assert_same_function(lamina_fn, keras_fn, x, atol=1e-6, **kwargs):
    value, grad = _value_and_grad(lamina_fn, x, **kwargs)
    k_value, k_grad = _value_and_grad(keras_fn, x, **kwargs)
    np.testing.assert_allclose(value, k_value, atol=atol, rtol=1e-6, err_msg="value")
    np.testing.assert_allclose(grad, k_grad, atol=atol, rtol=1e-6, err_msg="gradient")


@pytest.fixture
def x(rng):
    """Values spread over every piece of the piecewise functions (away from the kinks)."""
    return (rng.standard_normal((4, 6)) * 4).astype("float32")


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_every_activation_matches_keras(name, x):
    assert_same_function(activations.get(name), getattr(keras.activations, name), x,
                         **REQUIRED.get(name, {}))


@pytest.mark.parametrize("name,options", [
    ("relu", {"negative_slope": 0.1}),
    ("relu", {"max_value": 6.0}),
    ("relu", {"max_value": 2.5, "threshold": 0.5}),
    ("relu", {"negative_slope": 0.2, "max_value": 3.0, "threshold": 1.0}),
    ("relu", {"negative_slope": 0.3, "threshold": -1.0}),
    ("relu", {"max_value": 4.0, "threshold": -2.0}),  # Keras clips the kept negatives to 0
    ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {"alpha": 0.5}),
    ("celu", {"alpha": 2.0}),
    ("gelu", {"approximate": True}),
    ("soft_shrink", {"threshold": 1.0}),
    ("hard_shrink", {"threshold": 1.0}),
    ("squareplus", {"b": 1.0}),
    ("softmax", {"axis": 0}),
    ("log_softmax", {"axis": 0}),
    ("glu", {"axis": 0}),
])
def test_activation_options_match_keras(name, options, x):
    assert_same_function(activations.get(name), getattr(keras.activations, name), x, **options)


def test_softmax_over_several_axes_and_all_axes(x):
    cube = x.reshape(2, 3, 4)
    expected = torch.softmax(torch.from_numpy(cube).reshape(2, -1), -1).reshape(2, 3, 4)
    torch.testing.assert_close(activations.softmax(torch.from_numpy(cube), axis=(1, 2)), expected)
    flat = torch.softmax(torch.from_numpy(cube).reshape(-1), 0).reshape(2, 3, 4)
    torch.testing.assert_close(activations.softmax(torch.from_numpy(cube), axis=None), flat)
    np.testing.assert_allclose(activations.softmax(torch.from_numpy(cube), axis=None).numpy(),
                               keras.activations.softmax(cube, axis=None), atol=1e-7)


def test_sparsemax_is_the_projection_onto_the_simplex():
    """Martins & Astudillo (2016) by hand. Keras 3.15's sparsemax sums every in-support cumulative
    sum into the threshold (keras-team/keras#23425), which agrees only when one entry survives."""
    z = torch.tensor([[1.0, 0.8, 0.0], [0.0, 0.5, 1.0], [3.0, 0.0, -1.0], [0.3, 0.1, 0.2]])
    expected = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0],
                             [0.4333333, 0.2333333, 0.3333333]])
    out = activations.sparsemax(z)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(activations.sparsemax(z.T, axis=0), expected.T)
    one_survivor = z[2:3].numpy()
    np.testing.assert_allclose(out[2:3].numpy(), keras.activations.sparsemax(one_survivor), atol=1e-7)


def test_get_names_configs_and_suggestions():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get({"class_name": "function", "config": "gelu"}) is activations.gelu
    assert activations.get({"class_name": "Activation", "config": {"name": "tanh"}}) is activations.tanh
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    with pytest.raises(ValueError, match=r"Unknown activation: 'selu6'. Did you mean 'selu'"):
        activations.get("selu6")


def test_apply_keeps_the_logits_of_softmax_and_sigmoid_only():
    z = torch.randn(2, 3)
    for fn, kind in ((activations.softmax, "softmax"), (activations.sigmoid, "sigmoid")):
        out = activations.apply(fn, z)
        assert out._lamina_squash == kind and out._lamina_logits is z
    assert not hasattr(activations.apply(activations.tanh, z), "_lamina_logits")


# ---------------------------------------------------------------------------- layers
@pytest.mark.parametrize("options", [{}, {"max_value": 6.0}, {"negative_slope": 0.1, "threshold": 0.5},
                                     {"max_value": 2.0, "negative_slope": 0.2, "threshold": 1.0}])
def test_relu_layer_matches_keras(options, x):
    assert_parity(layers.ReLU(**options), keras.layers.ReLU(**options), x)


@pytest.mark.parametrize("options", [{}, {"negative_slope": 0.01}])
def test_leaky_relu_layer_matches_keras(options, x):
    out = assert_parity(layers.LeakyReLU(**options), keras.layers.LeakyReLU(**options), x)[0]
    slope = options.get("negative_slope", 0.3)  # the layer's default is 0.3, the function's 0.2
    np.testing.assert_allclose(out, np.where(x >= 0, x, slope * x), rtol=1e-6)


def test_leaky_relu_accepts_keras_2_alpha():
    with pytest.warns(UserWarning, match="negative_slope"):
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1


@pytest.mark.parametrize("shape,shared_axes", [((4, 6), None), ((2, 5, 3), [1]), ((2, 4, 4, 3), [1, 2]),
                                               ((2, 5, 3), 2)])
def test_prelu_matches_keras_with_learned_slopes(rng, shape, shared_axes):
    x = (rng.standard_normal(shape) * 2).astype("float32")
    keras_layer = keras.layers.PReLU(shared_axes=shared_axes)
    keras_layer.build(shape)
    keras_layer.set_weights([rng.uniform(0.05, 0.5, w.shape).astype("float32")
                             for w in keras_layer.get_weights()])
    layer = layers.PReLU(shared_axes=shared_axes)
    assert_parity(layer, keras_layer, x)
    assert layer.get_weights()[0].shape == keras_layer.get_weights()[0].shape


def test_prelu_starts_as_relu_and_trains_its_slope():
    layer = layers.PReLU()
    x = torch.tensor([[-2.0, 3.0]])
    assert layer(x).tolist() == [[0.0, 3.0]]
    layer(x).sum().backward()
    assert layer.alpha.grad.tolist() == [-2.0, 0.0]  # d/d(alpha) of -alpha * relu(-x)


def test_elu_layer_matches_keras(x):
    assert_parity(layers.ELU(alpha=0.7), keras.layers.ELU(alpha=0.7), x)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_softmax_layer_matches_keras(rng, axis):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    assert_parity(layers.Softmax(axis=axis), keras.layers.Softmax(axis=axis), x)


@pytest.mark.parametrize("mask_shape", [(2, 3, 4), (2, 1, 4), (4,)])
def test_softmax_layer_mask_matches_keras(rng, mask_shape):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    mask = rng.integers(0, 2, mask_shape).astype(bool)
    mask[..., 0] = True
    assert_parity(layers.Softmax(), keras.layers.Softmax(), x, mask=torch.from_numpy(mask))


def test_softmax_layer_output_feeds_its_logits_to_the_loss():
    z = torch.tensor([[1e4, -1e4, 0.0]])
    value = losses.SparseCategoricalCrossentropy()(np.array([1]), layers.Softmax()(z))
    assert value.item() == pytest.approx(2e4)


@pytest.mark.parametrize("layer", [layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
                                   layers.LeakyReLU(0.2), layers.PReLU(shared_axes=[1]),
                                   layers.ELU(0.5), layers.Softmax(axis=[1, 2])],
                         ids=lambda layer: type(layer).__name__)
def test_layer_configs_rebuild_the_layer(layer, rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 4)).astype("float32"))
    out = layer(x)
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x), out)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 4)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.ReLU(max_value=-1.0), r"ReLU: `max_value` must be a non-negative number or None"),
    (lambda: layers.ReLU(negative_slope=-0.1), r"ReLU: `negative_slope` must be a non-negative"),
    (lambda: layers.ReLU(threshold=None), r"ReLU: `threshold` must be a non-negative number. Received"),
    (lambda: layers.LeakyReLU(negative_slope=-0.3), r"LeakyReLU: `negative_slope`"),
    (lambda: layers.PReLU(shared_axes=[0]), r"PReLU: `shared_axes` must be input axes >= 1"),
    (lambda: layers.Softmax(axis="last"), r"Softmax: `axis` must be an int or a list of ints"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_prelu_unknown_axis_says_to_share_it():
    inp = layers.Input((None, 3))
    with pytest.raises(ValueError, match=r"PReLU 'p'.*axes \[1\] have unknown size.*"
                                         r"PReLU\(shared_axes=\[1\]\)"):
        layers.PReLU(name="p")(inp)


def test_softmax_mask_that_does_not_broadcast_names_the_layer():
    with pytest.raises(ValueError, match=r"Softmax 'sm': the mask must be broadcastable.*mask.shape=\(3,\)"):
        layers.Softmax(name="sm")(torch.zeros(2, 4), mask=torch.ones(3, dtype=torch.bool))
