import numpy as np
import pytest
import torch

from lamina import layers
from tests.parity import assert_parity, keras


@pytest.mark.parametrize("activation", [None, "relu", "softmax", "tanh"])
@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4)])
def test_dense_matches_keras(activation, shape, rng):
    x = rng.standard_normal(shape).astype("float32")
    assert_parity(layers.Dense(7, activation=activation),
                  keras.layers.Dense(7, activation=activation), x)


def test_dense_weights_use_keras_shapes():
    layer = layers.Dense(3)
    layer(torch.zeros(2, 4))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_array_equal(kernel.T, layer.kernel.detach().numpy())


def test_dense_rejects_wrong_width():
    layer = layers.Dense(3, name="head")
    layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"layer 'head'.*axis -1.*value 4"):
        layer(torch.zeros(2, 5))


def test_set_weights_names_the_layer_and_shapes():
    layer = layers.Dense(3, name="head")
    layer(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"'head' weight 0 has shape \(4, 3\)"):
        layer.set_weights([np.zeros((3, 4)), np.zeros(3)])


def test_activation_layer_matches_keras(rng):
    x = rng.standard_normal((4, 6)).astype("float32")
    assert_parity(layers.Activation("gelu"), keras.layers.Activation("gelu"), x)


def test_build_called_directly_marks_built_and_keeps_set_weights():
    layer = layers.Dense(2)
    layer.build((None, 3))
    assert layer.built
    layer.set_weights([np.ones((3, 2)), np.zeros(2)])
    out = layer(torch.ones(1, 3))
    np.testing.assert_array_equal(out.detach().numpy(), [[3.0, 3.0]])
