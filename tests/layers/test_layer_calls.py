"""The Keras layer-call surface: arrays in, several tensor arguments, implicit masks reaching a
custom call, Input(batch_shape=), model.input/output and layer.input/output, summary of an unbuilt
model and its Trainable column. Oracles: Keras 3 (torch backend) and hand-computed values."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402
from lamina import layers  # noqa: E402


def test_layer_called_on_numpy_returns_a_float32_tensor_as_keras():
    x = np.arange(6, dtype="float64").reshape(2, 3)
    dense = layers.Dense(2, kernel_initializer="ones")
    out = dense(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), [[3, 3], [12, 12]])
    k_out = keras.layers.Dense(2, kernel_initializer="ones")(x)
    assert str(k_out.dtype).endswith("float32")
    ids = layers.Embedding(5, 2)(np.array([[1, 4]]))
    assert tuple(ids.shape) == tuple(keras.layers.Embedding(5, 2)(np.array([[1, 4]])).shape) == (1, 2, 2)


@pytest.mark.parametrize("lib", [keras, lamina])
def test_layer_with_two_tensor_arguments_eager_and_in_a_graph(lib):
    class Scaled(lib.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs, other):
            return inputs * self.w + other

    a, b = np.ones((2, 3), "float32"), np.full((2, 3), 2.0, "float32")
    layer = Scaled()
    np.testing.assert_allclose(np.asarray(layer(a, b).detach().cpu()), 3.0)
    x, y = lib.Input((3,)), lib.Input((3,))
    out = Scaled()(x, y)
    assert tuple(out.shape) == (None, 3)
    model = lib.Model([x, y], out)
    np.testing.assert_allclose(model.predict([a, b], verbose=0), 3.0)


class _RecordsMask(layers.Layer):
    supports_masking = True

    def call(self, inputs, mask=None):
        self.seen = mask
        return inputs


def test_implicit_mask_reaches_a_custom_call_and_passes_on():
    tokens = np.array([[4, 2, 0, 0], [1, 0, 0, 0]])
    inp = lamina.Input((4,), dtype="int32")
    recorder = _RecordsMask()
    x = recorder(layers.Embedding(6, 3, mask_zero=True)(inp))
    pooled = layers.GlobalAveragePooling1D()(x)
    model = lamina.Model(inp, pooled)
    out = model.predict(tokens, verbose=0)
    assert recorder.seen.tolist() == (tokens != 0).tolist()
    emb = model.layers[1].get_weights()[0]
    np.testing.assert_allclose(out[1], emb[1], atol=1e-6)  # the padded steps were left out


def test_two_argument_call_gets_each_arguments_mask():
    class Pair(layers.Layer):
        def call(self, query, value, query_mask=None, value_mask=None):
            self.masks = (query_mask, value_mask)
            return query

    emb = layers.Embedding(5, 2, mask_zero=True)
    q, v = emb(torch.tensor([[1, 0]])), emb(torch.tensor([[0, 3]]))
    pair = Pair()
    pair(q, v)
    assert pair.masks[0].tolist() == [[True, False]] and pair.masks[1].tolist() == [[False, True]]


def test_input_batch_shape_and_errors():
    assert layers.Input(batch_shape=(8, 3)).shape == keras.Input(batch_shape=(8, 3)).shape
    assert layers.Input(batch_shape=(None, 5, 2), name="seq").shape == (None, 5, 2)
    with pytest.raises(ValueError, match="batch_shape"):
        layers.Input(shape=(3,), batch_shape=(None, 3))
    with pytest.raises(ValueError, match="sparse"):
        layers.Input((3,), sparse=True)


def test_model_input_output_and_feature_extraction_share_weights():
    inp = lamina.Input((4,))
    hidden = layers.Dense(3, activation="relu", name="hidden")(inp)
    out = layers.Dense(2, name="head")(hidden)
    model = lamina.Model(inp, out)
    assert model.input is inp and model.output is out
    assert model.get_layer("hidden").output is hidden and model.get_layer("head").input is hidden
    features = lamina.Model(model.input, model.get_layer("hidden").output)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    kernel, bias = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(features.predict(x, verbose=0), np.maximum(x @ kernel + bias, 0), atol=1e-6)
    every = lamina.Model(model.inputs, [layer.output for layer in model.layers])
    results = every.predict(x, verbose=0)
    assert len(results) == 3
    np.testing.assert_allclose(results[0], x)
    np.testing.assert_allclose(results[2], model.predict(x, verbose=0), atol=1e-6)
    two = lamina.Model([inp], [out])
    assert isinstance(two.input, list) and isinstance(two.output, list)


def test_sequential_layers_outputs_build_a_feature_extractor_as_keras():
    results = []
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    for lib in (keras, lamina):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"),
                                lib.layers.Dense(2, name="b")])
        if results:
            model.set_weights(results[0][0])
        extractor = lib.Model(model.inputs, [layer.output for layer in model.layers])
        if lib is lamina:  # Keras' Sequential has .inputs/.outputs; lamina's also the single ones
            assert model.input.shape == (None, 4) and model.output.shape == (None, 2)
        results.append((model.get_weights(), extractor.predict(x, verbose=0)))
    for k, lam in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(lam, k, atol=1e-6)


def test_layer_output_before_any_symbolic_call_is_an_attribute_error():
    assert not hasattr(layers.Dense(2), "output")
    assert not hasattr(layers.Dense(2), "input")


def test_summary_show_trainable_column():
    inp = lamina.Input((3,))
    frozen = layers.Dense(2, name="frozen")
    frozen.trainable = False
    model = lamina.Model(inp, layers.Dense(1, name="head")(frozen(inp)))
    lines = []
    model.summary(print_fn=lines.append, show_trainable=True)
    text = "\n".join(lines)
    assert "Trainable" in text
    rows = {line.split()[1]: line for line in text.splitlines() if "(Dense)" in line or "(Input" in line}
    assert rows["frozen"].rstrip(" │").endswith("N") and rows["head"].rstrip(" │").endswith("Y")
    assert "Non-trainable params: 8" in text


@pytest.mark.parametrize("lib", [keras, lamina])
def test_a_graph_gives_a_custom_call_its_mask_as_keras_masking_guide(lib):
    class TemporalSoftmax(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            assert mask is not None  # also while the graph is being built
            keep = torch.as_tensor(mask).to(inputs.dtype).unsqueeze(-1)
            exp = torch.exp(inputs - inputs.max(dim=1, keepdim=True).values) * keep
            return exp / exp.sum(dim=1, keepdim=True)

    tokens = lib.Input((None,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(tokens)
    out = TemporalSoftmax()(lib.layers.Dense(1)(x))
    model = lib.Model(tokens, out)
    probs = model.predict(np.array([[3, 4, 0, 0], [1, 2, 3, 5]]), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs[0, 2:] == 0)


def test_sequential_built_inside_predict_has_ordinary_weights():
    model = lamina.Sequential([layers.Embedding(10, 4), layers.Dense(2)])
    x = np.array([[1, 2], [3, 4]])
    before = model.predict(x, verbose=0)
    model.set_weights([w * 2 for w in model.get_weights()])
    # Both factors double and the bias is still zero: the outputs quadruple.
    np.testing.assert_allclose(model.predict(x, verbose=0), 4 * before, rtol=1e-5, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((2, 2, 2), "float32"), epochs=1, verbose=0)


def test_masked_graph_keeps_unknown_axes_and_records_masks():
    tokens = lamina.Input((None,))
    x = layers.Embedding(50, 8, mask_zero=True)(tokens)
    seq = layers.LSTM(4, return_sequences=True)(x)
    attended = layers.MultiHeadAttention(2, 4)(seq, seq)
    conv = layers.Conv1D(3, 5)(x)  # Conv1D drops the mask, as Keras
    assert x.shape == (None, None, 8) and seq.shape == (None, None, 4)
    assert attended.shape == (None, None, 4) and conv.shape == (None, None, 3)
    assert x.mask_shape == seq.mask_shape == attended.mask_shape == (None, None)
    assert conv.mask_shape is None


def test_model_input_and_output_shapes_as_keras():
    from tests.parity import keras

    def shapes(k):
        i, j = k.layers.Input((4, 3)), k.layers.Input((2,))
        two = k.Model([i, j], [k.layers.Dense(2)(i), k.layers.Dense(5)(j)])
        one = k.Sequential([k.layers.Input((7,)), k.layers.Dense(3)])
        return two.input_shape, two.output_shape, one.input_shape, one.output_shape

    assert shapes(lamina) == shapes(keras)
