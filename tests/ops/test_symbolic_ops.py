"""Ops and arithmetic on the symbolic tensors of a functional model: the same graph built in Keras
and in lamina, Keras' weights copied over, must give the same outputs, shapes and dtypes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

import lamina
from lamina.saving.errors import SavingError


def transformer_block(k, inputs):
    """A pre-norm encoder block in Keras' idiom: the residual sums are symbolic arithmetic."""
    x = k.layers.LayerNormalization(epsilon=1e-6)(inputs)
    x = k.layers.Dense(8)(x)
    res = x + inputs
    x = k.layers.Dense(8, activation="relu")(res)
    return x + res


def arithmetic(k, inputs):
    x = k.layers.Dense(4)(inputs)
    y = (x * 2 - inputs[..., :4]) / (1.0 + k.ops.abs(x)) + 2 * x ** 2 - (-x)
    z = 3.0 - y @ k.ops.transpose(x, (0, 2, 1))
    return [y, z, y > 0, x <= 0.5]


def reductions(k, inputs):
    x = k.layers.Dense(6)(inputs)
    m = k.ops.mean(x, axis=1)
    s = k.ops.sum(k.ops.square(x), axis=-1, keepdims=True)
    e = k.ops.expand_dims(m, -1)
    c = k.ops.concatenate([m, k.ops.max(x, axis=1), k.ops.squeeze(e, -1)], axis=-1)
    st = k.ops.stack([m, m * 2], axis=1)
    r = k.ops.reshape(x, (-1, 5 * 6))
    return [m, s, e, c, st, r, k.ops.softmax(c), k.ops.relu(x) + k.ops.sigmoid(x),
            k.ops.where(x > 0, x, k.ops.zeros_like(x)), k.ops.argmax(x, axis=-1)]


def slicing(k, inputs):
    x = k.layers.Dense(6)(inputs)
    return [x[:, 0], x[..., :3], x[:, -1, 2:5], x[:, 1:4:2], x[:, None, 0]]


def embeddings(k, inputs):
    """Token embeddings plus a constant made by ops from positions (a tensor, not symbolic)."""
    positions = k.ops.cast(k.ops.arange(0, 5, 1), "float32")
    tokens = k.layers.Embedding(10, 4)(inputs)
    return tokens + k.ops.expand_dims(positions, -1) * 0.1


BUILDERS = {"transformer_block": (transformer_block, (5, 8), "float32"),
            "arithmetic": (arithmetic, (5, 6), "float32"),
            "reductions": (reductions, (5, 3), "float32"),
            "slicing": (slicing, (5, 3), "float32"),
            "embeddings": (embeddings, (5,), "int32")}


def _data(shape, dtype, rng):
    if dtype == "int32":
        return rng.integers(0, 10, size=(4, *shape)).astype("int32")
    return rng.normal(size=(4, *shape)).astype("float32")


def _twins(name):
    build, shape, dtype = BUILDERS[name]
    k_in = keras.Input(shape, dtype=dtype)
    k_model = keras.Model(k_in, build(keras, k_in))
    l_in = lamina.layers.Input(shape, dtype=dtype)
    l_model = lamina.Model(l_in, build(lamina, l_in))
    l_model.set_weights(k_model.get_weights())
    return k_model, l_model


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_functional_model_with_ops_matches_keras(name, rng):
    k_model, l_model = _twins(name)
    _, shape, dtype = BUILDERS[name]
    x = _data(shape, dtype, rng)
    k_outs = _as_list(k_model(torch.from_numpy(x)))
    l_outs = _as_list(l_model(torch.from_numpy(x)))
    assert [tuple(t.shape) for t in _as_list(l_model.outputs)] == \
           [tuple(t.shape) for t in _as_list(k_model.outputs)]
    for k_out, l_out in zip(k_outs, l_outs, strict=True):
        assert str(l_out.dtype) == str(k_out.dtype)
        np.testing.assert_allclose(l_out.detach().numpy(), k_out.detach().cpu().numpy(),
                                   rtol=1e-5, atol=1e-5)
    # As in Keras, `model.layers` lists the layers and not the ops between them.
    assert [type(layer).__name__ for layer in l_model.layers] == \
           [type(layer).__name__ for layer in k_model.layers]


def test_model_with_ops_trains_saves_and_loads(tmp_path, rng):
    _, l_model = _twins("transformer_block")
    l_model.compile(optimizer="adam", loss="mse")
    x, y = _data((5, 8), "float32", rng), _data((5, 8), "float32", rng)
    l_model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    l_model.save(tmp_path / "block.lamina")
    loaded = lamina.load_model(tmp_path / "block.lamina")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), l_model.predict(x, verbose=0), atol=1e-6)


def test_slices_save_and_load(tmp_path, rng):
    _, l_model = _twins("slicing")
    l_model.save(tmp_path / "slices.lamina")
    loaded = lamina.load_model(tmp_path / "slices.lamina")
    x = _data((5, 3), "float32", rng)
    for a, b in zip(loaded.predict(x, verbose=0), l_model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_constant_tensor_argument_refuses_to_save_naming_the_op(tmp_path):
    inp = lamina.layers.Input((3,))
    model = lamina.Model(inp, lamina.ops.matmul(inp, torch.ones(3, 2)))
    with pytest.raises(SavingError, match=r"ops.matmul \('matmul'\).*constant array of shape \(3, 2\)"):
        model.save(tmp_path / "m.lamina")


def test_op_shape_rules_keep_unknown_axes_unknown():
    inp = lamina.layers.Input((None, 4))
    assert lamina.ops.mean(inp, axis=1).shape == (None, 4)
    assert lamina.ops.reshape(inp, (-1, 2)).shape == (None, 2)
    assert lamina.ops.shape(inp[:, 0]) == (None, 4)
    assert (inp[:, :, :2] * 2).shape == (None, None, 2)


def test_symbolic_tensor_cannot_be_iterated_or_tested():
    inp = lamina.layers.Input((3,))
    with pytest.raises(TypeError, match="iterated"):
        list(inp)
    with pytest.raises(TypeError, match="condition"):
        bool(inp > 0)
    assert {inp: 1}[inp] == 1  # hashable, compared by identity
    for convert in (lamina.ops.convert_to_numpy, lamina.ops.convert_to_tensor):
        with pytest.raises(TypeError, match="no value"):
            convert(inp)


def test_op_layer_with_fixed_arguments_round_trips_its_config(tmp_path, rng):
    """An OpLayer made from a config that keeps the op's options (as Keras' configs do)."""
    from lamina.ops import OpLayer

    inp = lamina.layers.Input((5, 3))
    mean = OpLayer("mean", arguments={"axis": 1, "keepdims": True})
    model = lamina.Model(inp, mean(inp))
    assert model.outputs[0].shape == (None, 1, 3)
    x = _data((5, 3), "float32", rng)
    np.testing.assert_allclose(model.predict(x, verbose=0), x.mean(axis=1, keepdims=True), rtol=1e-6)
    model.save(tmp_path / "mean.lamina")
    np.testing.assert_allclose(lamina.load_model(tmp_path / "mean.lamina").predict(x, verbose=0),
                               x.mean(axis=1, keepdims=True), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown op 'nope'"):
        OpLayer("nope")
