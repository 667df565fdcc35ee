import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from tests.parity import assert_parity, keras

# ----------------------------------------------------------------- Embedding


@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_embedding_matches_keras(dtype, shape, rng):
    ids = rng.integers(0, 7, size=shape).astype(dtype)
    assert_parity(layers.Embedding(7, 3), keras.layers.Embedding(7, 3), ids)


def test_embedding_weights_gradient_and_defaults():
    layer = layers.Embedding(6, 4)
    out = layer(torch.tensor([[1, 1, 5]]))
    (table,) = layer.get_weights()
    assert table.shape == (6, 4) and np.abs(table).max() <= 0.05  # Keras' "uniform" initializer
    out.sum().backward()
    expected = np.zeros((6, 4), "float32")
    expected[1], expected[5] = 2, 1  # each row's gradient counts how often it was looked up
    np.testing.assert_array_equal(layer.embeddings.grad.numpy(), expected)
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)


def test_embedding_mask_zero_matches_keras_compute_mask(rng):
    ids = np.array([[3, 0, 1, 0], [0, 0, 2, 5]])
    layer = layers.Embedding(6, 2, mask_zero=True)
    out = layer(torch.tensor(ids))
    expected = keras.layers.Embedding(6, 2, mask_zero=True).compute_mask(torch.tensor(ids))
    np.testing.assert_array_equal(out._lamina_mask.numpy(), np.asarray(expected))
    assert getattr(layers.Embedding(6, 2)(torch.tensor(ids)), "_lamina_mask", None) is None


def test_embedding_mask_flows_downstream_as_in_keras(rng):
    """Embedding(mask_zero) -> Dense -> Dropout -> Minimum with a Masking branch, eager in both
    libraries with the same weights: the same values and the same final mask."""
    ids = torch.tensor([[4, 0, 2, 0], [1, 3, 0, 0]])
    dense_input = torch.tensor(rng.standard_normal((2, 4, 3)).astype("float32"))
    dense_input[0, 2] = 0  # a step Masking hides
    table = rng.standard_normal((5, 3)).astype("float32")
    kernel, bias = rng.standard_normal((3, 3)).astype("float32"), np.zeros(3, "float32")

    def run(lib, build):
        emb, dense = lib.layers.Embedding(5, 3, mask_zero=True), lib.layers.Dense(3)
        build(emb, (2, 4))
        build(dense, (2, 4, 3))
        emb.set_weights([table])
        dense.set_weights([kernel, bias])
        a = lib.layers.Dropout(0.5)(dense(emb(ids)))
        b = lib.layers.Masking()(dense_input)
        return lib.layers.Minimum()([a, b])

    out = run(lamina, lambda layer, shape: layer.build_from_shape(shape))
    expected = run(keras, lambda layer, shape: layer.build(shape))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(out._lamina_mask.numpy(), expected._keras_mask.numpy())


@pytest.mark.parametrize("bad", [7, -1])
def test_embedding_out_of_range_index_is_a_clear_error(bad):
    layer = layers.Embedding(7, 2, name="words")
    with pytest.raises(ValueError, match=rf"Embedding 'words': index {bad} is out of range for "
                                         r"input_dim=7; indices must lie in \[0, 6\]"):
        layer(torch.tensor([[1, bad, 2]]))


def test_embedding_in_a_model_and_regularizer():
    model = lamina.Sequential([layers.Input((4,), dtype="int64"),
                               layers.Embedding(10, 3, embeddings_regularizer="l2"),
                               layers.Flatten(), layers.Dense(1)])
    assert model.outputs[0].shape == (None, 1)
    assert len(model.layers[0].losses) == 1 and model.layers[0].losses[0] > 0
    assert model(torch.tensor([[0, 1, 2, 9]])).dtype == torch.float32


@pytest.mark.parametrize("kwargs", [{"input_dim": 0, "output_dim": 3}, {"input_dim": 4, "output_dim": 2.5},
                                    {"input_dim": True, "output_dim": 3}])
def test_embedding_argument_errors(kwargs):
    with pytest.raises(ValueError, match="Embedding: `(input|output)_dim` must be a positive int"):
        layers.Embedding(**kwargs)


def test_embedding_config_round_trips():
    layer = layers.Embedding(5, 2, mask_zero=True, embeddings_initializer="glorot_uniform")
    again = layers.Embedding.from_config(layer.get_config())
    assert again.get_config() == layer.get_config() and again.mask_zero


# ----------------------------------------------------------------- Masking


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_matches_keras(mask_value, rng):
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    x[0, 1] = mask_value
    x[2, 3:] = mask_value
    x[1, 2, 0] = mask_value  # one feature only: not masked
    out = assert_parity(layers.Masking(mask_value), keras.layers.Masking(mask_value), x)
    expected_mask = keras.layers.Masking(mask_value).compute_mask(torch.tensor(x))
    mask = layers.Masking(mask_value)(torch.tensor(x))._lamina_mask
    np.testing.assert_array_equal(mask.numpy(), np.asarray(expected_mask))
    assert not mask[0, 1] and not mask[2, 3:].any() and mask[1, 2]
    assert (out[0][0, 1] == 0).all()


def test_masking_config_round_trips():
    layer = layers.Masking(-1.0)
    assert layers.Masking.from_config(layer.get_config()).mask_value == -1.0


# ----------------------------------------------------------------- Lambda


def test_lambda_applies_the_function_with_arguments(rng):
    x = rng.standard_normal((3, 4)).astype("float32")

    def scaled_square(t, k):
        return k * t**2

    assert_parity(layers.Lambda(scaled_square, arguments={"k": 3.0}),
                  keras.layers.Lambda(scaled_square, arguments={"k": 3.0}), x)


@pytest.mark.parametrize("output_shape,expected", [
    (None, (None, 2, 4)),
    ((2, 4), (None, 2, 4)),
    (lambda s: (s[0], 2, s[2]), (None, 2, 4)),
])
def test_lambda_output_shape(output_shape, expected):
    layer = layers.Lambda(lambda t: t[:, :2], output_shape=output_shape)
    assert layer(layers.Input((6, 4))).shape == expected
    keras_layer = keras.layers.Lambda(lambda t: t[:, :2], output_shape=output_shape)
    assert keras_layer.compute_output_shape((None, 6, 4)) == expected


def test_lambda_several_outputs():
    layer = layers.Lambda(lambda t: [t[:, :1], t[:, 1:]], output_shape=[(1,), (3,)])
    first, second = layer(layers.Input((4,)))
    assert first.shape == (None, 1) and second.shape == (None, 3)


def test_lambda_gets_training_and_mask_when_it_asks():
    seen = {}

    def spy(t, training=None, mask=None):
        seen.update(training=training, mask=mask)
        return t + 0

    x = torch.ones(2, 3, 1)
    x._lamina_mask = torch.tensor([[True, False, True]] * 2)
    out = layers.Lambda(spy, mask=lambda inputs, mask: mask)(x, training=True)
    assert seen["training"] is True and torch.equal(seen["mask"], x._lamina_mask)
    assert torch.equal(out._lamina_mask, x._lamina_mask)
    assert getattr(layers.Lambda(spy)(x), "_lamina_mask", None) is None  # no `mask`: dropped


def test_lambda_shape_inference_failure_says_what_to_do():
    def needs_known_length(t):
        if t.shape[1] != 7:
            raise RuntimeError("expects 7 steps")
        return t

    with pytest.raises(ValueError, match=r"Lambda 'lambda'.*expects 7 steps.*Pass `output_shape`"):
        layers.Lambda(needs_known_length)(layers.Input((None, 2)))


def test_lambda_argument_errors():
    with pytest.raises(TypeError, match="`function` must be callable"):
        layers.Lambda(3)
    with pytest.raises(TypeError, match="`arguments` must be a dict"):
        layers.Lambda(abs, arguments=[1])


def test_lambda_config_rebuilds_it():
    layer = layers.Lambda(torch.neg, output_shape=(3,), arguments={})
    again = layers.Lambda.from_config(layer.get_config())
    torch.testing.assert_close(again(torch.ones(2, 3)), -torch.ones(2, 3))
    assert again.compute_output_shape((None, 3)) == (None, 3)
