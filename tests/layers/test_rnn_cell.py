"""layers.RNN with a user's cell, against Keras 3 (torch backend) running the same cell code with
copied weights: last output, sequences, states, go_backwards, masks, initial states."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402


def minimal_cell(lib):
    """The cell of Keras' RNN guide, written against `lib`; two states to cover lists."""

    class MinimalCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = [units, units]

        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                          initializer="glorot_uniform")
            self.recurrent_kernel = self.add_weight(name="recurrent_kernel",
                                                    shape=(self.units, self.units),
                                                    initializer="glorot_uniform")

        def call(self, inputs, states):
            h, total = states
            output = torch.tanh(inputs @ self.kernel + h @ self.recurrent_kernel)
            return output, [output, total + output]

    return MinimalCell(4)


def _model(lib, **rnn_kwargs):
    tokens = lib.Input((6,), dtype="int32")
    x = lib.layers.Embedding(9, 3, mask_zero=True)(tokens)
    out = lib.layers.RNN(minimal_cell(lib), **rnn_kwargs)(x)
    return lib.Model(tokens, out)


@pytest.mark.parametrize("rnn_kwargs", [
    {},
    {"return_sequences": True},
    {"return_state": True, "go_backwards": True},
    {"return_sequences": True, "return_state": True, "zero_output_for_mask": True},
])
def test_custom_cell_with_masks_matches_keras(rnn_kwargs):
    tokens = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 1], [0, 0, 2, 3, 0, 4]])
    k_model, l_model = _model(keras, **rnn_kwargs), _model(lamina, **rnn_kwargs)
    l_model.set_weights(k_model.get_weights())
    k_out, l_out = k_model.predict(tokens, verbose=0), l_model.predict(tokens, verbose=0)
    for k, lam in zip(k_out if isinstance(k_out, (list, tuple)) else [k_out],
                      l_out if isinstance(l_out, (list, tuple)) else [l_out], strict=True):
        np.testing.assert_allclose(lam, k, atol=1e-5)


def test_initial_state_and_gradients_match_keras():
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    h0 = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    results = []
    for lib in (keras, lamina):
        rnn = lib.layers.RNN(minimal_cell(lib), return_sequences=True)
        xt = torch.tensor(x, requires_grad=True)
        rnn(xt)
        if results:
            rnn.set_weights(results[0][0])
        out = rnn(xt, initial_state=[torch.tensor(h0), torch.zeros(2, 4)])
        (grad,) = torch.autograd.grad((out * out).sum(), [xt])
        results.append((rnn.get_weights(), out.detach().numpy(), grad.numpy()))
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-5)
    np.testing.assert_allclose(results[1][2], results[0][2], atol=1e-5)


def test_symbolic_shapes_and_bad_cells():
    inp = lamina.Input((7, 3))
    out, h, total = lamina.layers.RNN(minimal_cell(lamina), return_state=True)(inp)
    assert out.shape == (None, 4) and h.shape == (None, 4) and total.shape == (None, 4)

    class NoState(lamina.layers.Layer):
        def call(self, inputs, states):
            return inputs, states

    with pytest.raises(ValueError, match="state_size"):
        lamina.layers.RNN(NoState())


@pytest.mark.parametrize("cell, kwargs", [
    ("SimpleRNNCell", {}),
    ("LSTMCell", {}),
    ("LSTMCell", {"unit_forget_bias": False, "use_bias": False}),
    ("GRUCell", {}),
    ("GRUCell", {"reset_after": False}),
])
def test_builtin_cells_in_rnn_match_keras(cell, kwargs):
    tokens = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 1], [0, 0, 2, 3, 0, 4]])
    models = []
    for lib in (keras, lamina):
        inp = lib.Input((6,), dtype="int32")
        x = lib.layers.Embedding(9, 3, mask_zero=True)(inp)
        out = lib.layers.RNN(getattr(lib.layers, cell)(4, **kwargs), return_sequences=True,
                             return_state=True)(x)
        models.append(lib.Model(inp, list(out)))
    assert [w.shape for w in models[1].get_weights()] == [w.shape for w in models[0].get_weights()]
    models[1].set_weights(models[0].get_weights())
    for k, lam in zip(models[0].predict(tokens, verbose=0), models[1].predict(tokens, verbose=0),
                      strict=True):
        np.testing.assert_allclose(lam, k, atol=1e-5)


@pytest.mark.parametrize("return_state", [False, True])
def test_a_list_of_cells_is_stacked_as_keras(return_state):
    from tests.parity import keras as k

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 3)).astype("float32")

    def run(lib):
        rnn = lib.layers.RNN([lib.layers.LSTMCell(4), lib.layers.GRUCell(3), lib.layers.SimpleRNNCell(2)],
                             return_sequences=True, return_state=return_state)
        rnn.build((None, 5, 3))
        return rnn

    keras_rnn, lamina_rnn = run(k), run(lamina)
    lamina_rnn.set_weights(keras_rnn.get_weights())
    want = keras_rnn(x)
    got = lamina_rnn(x)
    if return_state:  # the output, then one list of states per cell, as Keras returns them
        assert [len(s) for s in got[1:]] == [len(s) for s in want[1:]] == [2, 1, 1]
        want, got = [want[0], *[t for s in want[1:] for t in s]], [got[0], *[t for s in got[1:] for t in s]]
    else:
        want, got = [want], [got]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.detach().numpy(), np.asarray(w.detach().cpu()), rtol=1e-5, atol=1e-6)
