"""predict is deterministic; predict(training=True) is stochastic but changes nothing;
predict_mc switches on only the dropout layers."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers


def _model():
    model = lamina.Sequential([
        layers.Input((6,)),
        layers.Dense(32, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.5),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((64, 6)).astype("float32")
    model.fit(x, np.arange(64) % 3, epochs=2, batch_size=16, verbose=0)
    return model, x


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(before, model):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"{k} changed"


def test_predict_is_deterministic_with_dropout():
    model, x = _model()
    np.testing.assert_array_equal(model.predict(x), model.predict(x))


def test_predict_training_true_varies_and_changes_no_state():
    model, x = _model()
    before = _state(model)
    a, b = model.predict(x, training=True), model.predict(x, training=True)
    assert not np.allclose(a, b)
    _assert_same_state(before, model)
    assert not any(m.training for m in model.modules())


def test_predict_training_true_uses_batch_statistics():
    """BN in training mode normalises with the batch's own statistics: per-feature mean ~0."""
    model = lamina.Sequential([layers.Input((4,)), layers.BatchNormalization(center=False, scale=False)])
    x = np.random.default_rng(1).normal(5.0, 3.0, (256, 4)).astype("float32")
    out = model.predict(x, training=True, batch_size=256)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-4)
    inference = model.predict(x, batch_size=256)  # moving stats are still the initial 0 / 1
    np.testing.assert_allclose(inference, x / np.sqrt(1 + 1e-3), rtol=1e-5)


def test_predict_mc_shapes_entropy_and_no_state_change():
    model, x = _model()
    before = _state(model)
    mc = model.predict_mc(x[:10], samples=20, return_samples=True)
    assert mc.mean.shape == (10, 3) and mc.std.shape == (10, 3)
    assert mc.samples.shape == (20, 10, 3)
    np.testing.assert_allclose(mc.mean, mc.samples.mean(0), rtol=1e-6)
    np.testing.assert_allclose(mc.std, mc.samples.std(0), rtol=1e-5, atol=1e-7)
    assert (mc.std > 0).any()
    expected_entropy = -(mc.mean * np.log(mc.mean)).sum(-1)
    np.testing.assert_allclose(mc.entropy, expected_entropy, rtol=1e-5)
    _assert_same_state(before, model)
    assert not any(m.training for m in model.modules())


def test_predict_mc_keeps_batchnorm_in_inference_mode():
    """With dropout rate 0 the MC passes must equal plain predict: BN stays on moving stats."""
    model = lamina.Sequential([layers.Input((5,)), layers.Dense(8), layers.BatchNormalization(),
                               layers.Dropout(0.0), layers.Dense(2)])
    model.compile(loss="mse")
    x = np.random.default_rng(2).standard_normal((32, 5)).astype("float32")
    model.fit(x, x[:, :2], epochs=2, verbose=0)
    mc = model.predict_mc(x, samples=3)
    np.testing.assert_allclose(mc.mean, model.predict(x), atol=1e-6)
    np.testing.assert_allclose(mc.std, 0.0, atol=1e-6)


def test_predict_mc_without_dropout_says_so():
    model = lamina.Sequential([layers.Input((2,)), layers.Dense(1)])
    with pytest.raises(ValueError, match="no dropout-type layer"):
        model.predict_mc(np.zeros((3, 2)))


def _by_hand(model, x):
    """_model()'s inference output from its Keras-layout weights in float64 numpy: relu dense,
    BatchNorm on the moving statistics (epsilon 1e-3), dropout off, softmax dense."""
    k1, b1, gamma, beta, mean, var, k2, b2 = (w.astype("float64") for w in model.get_weights())
    h = np.maximum(x.astype("float64") @ k1 + b1, 0.0)
    h = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    logits = h @ k2 + b2
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("n", [1, 32])
def test_single_batch_predict_is_the_model_computed_by_hand(n):
    """One batch or less (the serving path), from numpy or torch input, and the batched path
    give the model's output computed by hand from its weights."""
    model, x = _model()
    expected = _by_hand(model, x[:n])
    for given in (x[:n], torch.as_tensor(x[:n])):
        out = model.predict(given, verbose=0)
        assert isinstance(out, np.ndarray) and out.shape == (n, 3)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, batch_size=n, verbose=0)[:n], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 40])
def test_predict_never_returns_a_view_of_the_input(n):
    model = lamina.Sequential([layers.Input((4,)), layers.Dropout(0.5)])  # the identity in inference
    x = np.ones((n, 4), dtype="float32")
    out = model.predict(x, verbose=0)
    out[...] = 7.0
    assert (x == 1.0).all()
    t = torch.ones(n, 4)
    model.predict(t, verbose=0)[...] = 7.0
    assert bool((t == 1.0).all())


def test_inference_leaves_dropout_layers_out_but_runs_their_hooks():
    """A Sequential skips dropout-type layers in inference (they are the identity there); a layer
    with a forward hook is still called, and training mode still drops."""
    model, x = _model()
    dropout = model.layers[2]
    assert isinstance(dropout, layers.Dropout)
    calls = []
    real_call = dropout.call
    dropout.call = lambda *a, **k: calls.append(1) or real_call(*a, **k)
    inference = model.predict(x, verbose=0)
    assert calls == []
    handle = dropout.register_forward_hook(lambda *a: None)
    np.testing.assert_array_equal(model.predict(x, verbose=0), inference)
    assert len(calls) == 2  # 64 samples in batches of 32
    handle.remove()
    calls.clear()
    with torch.no_grad():
        stochastic = model(torch.as_tensor(x), training=True)
    assert calls == [1] and not np.allclose(stochastic.numpy(), inference)


def _stack(api, index):
    """The same layer stack in lamina or Keras (`api`): dense with BN and dropout, conv, recurrent."""
    L = api.layers
    if index == 0:
        return api.Sequential([L.Input((6,)), L.Dense(32, activation="relu"), L.BatchNormalization(),
                               L.Dropout(0.5), L.Dense(3, activation="softmax")])
    if index == 1:
        return api.Sequential([L.Input((20, 3)), L.Conv1D(4, 3, padding="same"), L.BatchNormalization(),
                               L.Activation("relu"), L.MaxPooling1D(2), L.Flatten(), L.Dropout(0.3),
                               L.Dense(2)])
    return api.Sequential([L.Input((7, 3)), L.LSTM(5, return_sequences=True), L.GRU(4),
                           L.Dense(3, activation="softmax")])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_inference_plan_matches_keras_and_skips_the_layer_calls(index, monkeypatch):
    """A Sequential in inference runs its layers' `call`s directly once one full call has
    validated inputs of that shape: Keras' output for the same weights, bit for bit the full
    path's, without entering the layers' forward (nor the model's own)."""
    from lamina.layers.base import Layer
    from tests.parity import keras

    model = _stack(lamina, index)
    x = torch.randn(6, *model._input_tensor.shape[1:])
    with torch.no_grad():
        model(x * 2 + 1, training=True)       # moves BatchNorm's moving statistics off 0 and 1
        model.eval()
        full = model(x)                       # the full path; records the plan
        calls = []
        real_forward = Layer.forward
        monkeypatch.setattr(Layer, "forward",
                            lambda self, *a, **k: calls.append(self) or real_forward(self, *a, **k))
        planned = model(x)
    assert calls == []                        # not even the model's own forward ran
    torch.testing.assert_close(planned, full, rtol=0, atol=0)
    twin = _stack(keras, index)
    twin.set_weights(model.get_weights())
    expected = keras.ops.convert_to_numpy(twin(x.numpy(), training=False))
    np.testing.assert_allclose(planned.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_inference_plan_is_not_used_where_a_full_call_is_needed():
    from lamina.layers.base import Layer

    model, x = _model()
    x = torch.as_tensor(x)
    model.eval()
    counted = []
    original = Layer.forward

    def counting(self, *a, **k):
        counted.append(self.name)
        return original(self, *a, **k)

    with torch.no_grad():
        model(x)
        Layer.forward = counting
        try:
            model(x, training=True)                          # training: every layer runs
            assert len(counted) > 1
            counted.clear()
            model(torch.randn(3, 6))                         # another batch size is the same key
            assert counted == []
            counted.clear()
            handle = model.layers[0].register_forward_hook(lambda *a: None)
            model(x)                                         # a hook must run
            assert model.layers[0].name in counted
            handle.remove()
            counted.clear()
            model.layers[1].train()                          # a layer in training mode
            model(x)
            assert model.layers[1].name in counted
            model.layers[1].eval()
            counted.clear()
            model.add(layers.Dense(2))                       # the stack changed: a full call again
            model(x)
            assert len(counted) > 1
        finally:
            Layer.forward = original


def test_a_recorded_plan_still_runs_the_models_own_hooks_and_checks():
    """A call with a recorded plan skips the model's own call machinery: a hook on the model
    must still run, `training=False` takes the plan (its numbers), and inputs of another shape
    or dtype take the full path, with its cast or its error."""
    from lamina.layers.base import Layer

    model, x = _model()
    x = torch.as_tensor(x)
    model.eval()
    with torch.no_grad():
        full = model(x)  # records the plan
        seen = []
        handle = model.register_forward_hook(lambda module, args, out: seen.append(out))
        torch.testing.assert_close(model(x), full, rtol=0, atol=0)
        assert len(seen) == 1
        handle.remove()
        counted = []
        original = Layer.forward
        Layer.forward = lambda self, *a, **k: counted.append(self.name) or original(self, *a, **k)
        try:
            torch.testing.assert_close(model(x, training=False), full, rtol=0, atol=0)
            assert counted == []
            torch.testing.assert_close(model(x.double()), full, rtol=0, atol=0)  # cast to float32
            assert model.name in counted
            with pytest.raises(ValueError, match="expects input of shape"):
                model(torch.randn(4, 5))
        finally:
            Layer.forward = original


def test_inference_plan_leaves_mask_making_models_on_the_full_path():
    """Embedding(mask_zero=True) makes the mask the LSTM needs: every call keeps the full path
    and matches Keras' masked result."""
    from tests.parity import keras

    def stack(api):
        return api.Sequential([api.layers.Input((5,)), api.layers.Embedding(10, 3, mask_zero=True),
                               api.layers.LSTM(4)])

    model, twin = stack(lamina), stack(keras)
    twin.set_weights(model.get_weights())
    x = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7]])
    model.eval()
    with torch.no_grad():
        first, second = model(torch.as_tensor(x)), model(torch.as_tensor(x))
    expected = keras.ops.convert_to_numpy(twin(x, training=False))
    for out in (first, second):
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert next(iter(model._plans.values())) is None


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_a_bad_batch_size_is_an_error_for_one_sample_too(batch_size):
    """The one-batch path checks batch_size as the batched path does."""
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(2)])
    for n in (1, 40):
        with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
            model.predict(np.zeros((n, 3), "float32"), batch_size=batch_size, verbose=0)


class _LoggedSetattr(torch.nn.Module):
    """A torch module with its own __setattr__: mode switches must still go through it."""

    def __init__(self):
        super().__init__()
        self.writes = []
        self.inner = torch.nn.Dropout(0.5)

    def __setattr__(self, name, value):
        if name == "training":
            self.writes.append(value)
        super().__setattr__(name, value)

    def forward(self, x):
        return self.inner(x)


def _nested_model():
    shared = layers.Dense(4)
    wrapped = _LoggedSetattr()
    model = lamina.Sequential([layers.Input((4,)), shared, layers.TorchModuleWrapper(wrapped), shared,
                               layers.Dropout(0.5)])
    model.some_none_child = None  # not a module: ignored by the walk as by modules()
    model._modules["empty_slot"] = None
    return model, wrapped


def test_module_walk_is_modules_order_each_once():
    from lamina.models.training import submodules

    model, _ = _nested_model()
    assert submodules(model) == list(model.modules())


def test_predict_switches_every_module_and_restores_each():
    model, wrapped = _nested_model()
    model.train()  # every module in training mode, the nested torch one included
    wrapped.writes.clear()
    seen = []
    hook = wrapped.inner.register_forward_hook(lambda m, i, o: seen.append(m.training))
    x = np.ones((3, 4), "float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    hook.remove()
    assert seen == [False, False]  # the nested Dropout ran in inference mode
    assert wrapped.writes == [False, True, False, True]  # through the class's own __setattr__
    assert all(m.training for m in model.modules())  # every module back as it was
