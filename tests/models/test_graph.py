"""Functional, Sequential and subclassed models: graph building, calling and errors."""

import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers
from tests.parity import keras


class RecordMode(layers.Layer):
    """Identity that records the training flag it was called with."""

    def call(self, inputs, training=None):
        self.seen = training
        return inputs


def test_functional_multi_input_output_matches_keras(rng):
    def build(L, Model):
        a, b = L.Input((4,), name="a"), L.Input((3,), name="b")
        shared = L.Dense(5, name="shared")
        h = L.Concatenate(name="cat")([shared(a), L.Dense(5, name="proj")(b)])
        return Model([a, b], [L.Dense(2, name="out1")(h), L.Dense(1, name="out2")(shared(a))])

    km = build(keras.layers, keras.Model)
    lm = build(layers, lamina.Model)
    lm.set_weights(km.get_weights())
    xa, xb = rng.standard_normal((6, 4)).astype("float32"), rng.standard_normal((6, 3)).astype("float32")
    k1, k2 = km.predict([xa, xb], verbose=0)
    l1, l2 = lm.predict([xa, xb])
    np.testing.assert_allclose(l1, k1, atol=1e-5)
    np.testing.assert_allclose(l2, k2, atol=1e-5)
    # inputs by name, as Keras accepts a dict keyed by Input names
    d1, _ = lm.predict({"a": xa, "b": xb})
    np.testing.assert_allclose(d1, k1, atol=1e-5)
    assert [w.shape for w in lm.get_weights()] == [w.shape for w in km.get_weights()]


def test_model_call_keeps_autograd_and_is_a_module():
    inp = layers.Input((3,))
    model = lamina.Model(inp, layers.Dense(2)(inp))
    assert isinstance(model, nn.Module)
    x = torch.randn(4, 3, requires_grad=True)
    y = model(x)
    assert isinstance(y, torch.Tensor) and y.grad_fn is not None
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert len(list(model.parameters())) == 2
    assert set(model.state_dict()) == {"_graph_layers.1.kernel", "_graph_layers.1.bias"}


def test_pinned_training_mode_stays_inside_the_graph():
    inp = layers.Input((2,))
    pinned, free = RecordMode(), RecordMode()
    model = lamina.Model(inp, free(pinned(inp, training=True)))
    model(torch.zeros(1, 2))
    assert pinned.seen is True and free.seen is False
    model(torch.zeros(1, 2), training=False)
    assert pinned.seen is True and free.seen is False


def test_model_training_flag_reaches_every_layer():
    inp = layers.Input((2,))
    rec = RecordMode()
    model = lamina.Model(inp, rec(inp))
    model(torch.zeros(1, 2), training=True)
    assert rec.seen is True
    model.train()
    model(torch.zeros(1, 2))
    assert rec.seen is True


def test_graph_disconnected_and_duplicate_names():
    a, b = layers.Input((2,)), layers.Input((2,))
    out = layers.Dense(1)(b)
    with pytest.raises(ValueError, match="Graph disconnected"):
        lamina.Model(a, out)
    inp = layers.Input((2,))
    h = layers.Dense(2, name="same")(inp)
    with pytest.raises(ValueError, match="unique names; 'same'"):
        lamina.Model(inp, layers.Dense(2, name="same")(h))


def test_nested_model_as_a_layer(rng):
    inner_in = layers.Input((3,))
    inner = lamina.Model(inner_in, layers.Dense(4, activation="relu")(inner_in), name="inner")
    outer_in = layers.Input((3,))
    outer = lamina.Model(outer_in, layers.Dense(1)(inner(outer_in)))
    x = torch.tensor(rng.standard_normal((5, 3)), dtype=torch.float32)
    by_hand = outer.layers[-1](inner(x))
    torch.testing.assert_close(outer(x), by_hand)
    assert outer.count_params() == 3 * 4 + 4 + 4 + 1


def test_sequential_lazy_build_and_input_errors():
    model = lamina.Sequential([layers.Dense(3), layers.Dense(1)])
    assert not model.built
    model(torch.zeros(2, 5))
    assert model.built and model.layers[0].get_weights()[0].shape == (5, 3)
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 5\).*\(2, 4\)"):
        model(torch.zeros(2, 4))


def test_sequential_add_pop_and_input_shape_kwarg():
    model = lamina.Sequential()
    model.add(layers.Dense(4, input_shape=(3,)))
    model.add(layers.Dense(2))
    assert model.outputs[0].shape == (None, 2)
    model.pop()
    assert model.outputs[0].shape == (None, 4) and len(model.layers) == 1
    with pytest.raises(TypeError, match="Sequential.add takes a layer"):
        model.add("dense")


def test_torch_module_inside_sequential(rng):
    lin = nn.Linear(4, 2)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(4), lin])
    x = torch.tensor(rng.standard_normal((2, 3)), dtype=torch.float32)
    expected = lin(model.layers[0](x))
    torch.testing.assert_close(model(x), expected)
    assert sum(p.numel() for p in model.parameters()) == 3 * 4 + 4 + 4 * 2 + 2


def test_subclassed_model_trains():
    class TwoLayer(lamina.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(8, activation="relu")
            self.out = layers.Dense(1)

        def call(self, inputs, training=None):
            return self.out(self.hidden(inputs))

    model = TwoLayer()
    x = np.linspace(-1, 1, 64, dtype="float32")[:, None]
    y = 3 * x + 1
    model.compile(optimizer=lamina.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    assert [w.shape for w in model.get_weights()] == [(1, 8), (8,), (8, 1), (1,)]


def test_summary_shows_formula_and_totals():
    model = lamina.Sequential([layers.Input((150, 1)), layers.Dense(128), layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "1×128 + 128 = 256" in text
    assert "128×2 + 2 = 258" in text
    assert "Total params: 514" in text and "Non-trainable params: 0" in text


def test_summary_before_build_lists_unbuilt_layers_as_keras():
    lines = []
    lamina.Sequential([layers.Dense(2, name="d")]).summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "d (Dense)" in text and "0 (unbuilt)" in text and "Total params: 0" in text
