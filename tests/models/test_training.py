"""fit/evaluate/predict against Keras 3 running the same script, and the training-loop contract."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lamina
from lamina import layers
from tests.parity import keras


def _blobs(rng, n=96, classes=3, features=4):
    centers = rng.standard_normal((classes, features)) * 3
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.standard_normal((n, features))).astype("float32")
    return x, y


def _mlp(L, classes, activation="softmax"):
    return [L.Input((4,)), L.Dense(16, activation="relu"), L.Dense(classes, activation=activation)]


@pytest.mark.parametrize(
    "loss,classes,activation,target",
    [
        ("sparse_categorical_crossentropy", 3, "softmax", "sparse"),
        ("categorical_crossentropy", 3, "softmax", "onehot"),
        ("binary_crossentropy", 1, "sigmoid", "binary"),
        ("mse", 1, None, "regression"),
    ],
)
def test_fit_follows_keras_step_by_step(rng, loss, classes, activation, target):
    """Same weights, same batches, plain SGD: the epoch losses and metrics must agree with Keras."""
    x, y = _blobs(rng)
    if target == "onehot":
        y = np.eye(3, dtype="float32")[y]
    elif target == "binary":
        y = (y > 0).astype("float32")[:, None]
    elif target == "regression":
        y = (x[:, :1] * 0.5).astype("float32")
    metrics = ["mae"] if target == "regression" else ["accuracy"]
    km = keras.Sequential(_mlp(keras.layers, classes, activation))
    lm = lamina.Sequential(_mlp(layers, classes, activation))
    lm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss, metrics=metrics)
    lm.compile(optimizer=lamina.optimizers.SGD(0.05), loss=loss, metrics=metrics)
    kh = km.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    lh = lm.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    assert set(lh.history) == set(kh.history)
    for key in kh.history:
        np.testing.assert_allclose(lh.history[key], kh.history[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for lw, kw in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(lw, kw, atol=1e-5)
    kres = km.evaluate(x, y, return_dict=True, verbose=0)
    lres = lm.evaluate(x, y, return_dict=True, verbose=0)
    for key in kres:
        np.testing.assert_allclose(lres[key], kres[key], rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(lm.predict(x), km.predict(x, verbose=0), atol=1e-5)


def test_functional_keras_script_with_imports_changed_reaches_keras_accuracy(rng):
    """The same functional script, Adam and shuffling included, lands in the same accuracy band."""
    x, y = _blobs(rng, n=300)

    def script(L, Model, seed):
        (keras.utils if Model is keras.Model else lamina.utils).set_random_seed(seed)
        inp = L.Input((4,))
        h = L.Dense(32, activation="relu")(inp)
        out = L.Dense(3, activation="softmax")(h)
        model = Model(inp, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:200], y[:200], batch_size=16, epochs=15, verbose=0)
        return model.evaluate(x[200:], y[200:], return_dict=True, verbose=0)["accuracy"]

    keras_acc = script(keras.layers, keras.Model, 1)
    lamina_acc = script(layers, lamina.Model, 1)
    assert keras_acc > 0.8
    assert abs(lamina_acc - keras_acc) <= 0.05


@pytest.mark.parametrize("weighting", ["sample", "class"])
def test_class_and_sample_weights_match_keras(rng, weighting):
    x, y = _blobs(rng, n=48)
    kwargs = ({"sample_weight": rng.uniform(0.5, 2.0, len(x)).astype("float32")} if weighting == "sample"
              else {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}})
    km = keras.Sequential(_mlp(keras.layers, 3))
    lm = lamina.Sequential(_mlp(layers, 3))
    lm.set_weights(km.get_weights())
    for m, opt in ((km, keras.optimizers.SGD(0.1)), (lm, lamina.optimizers.SGD(0.1))):
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    kh = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **kwargs)
    lh = lm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **kwargs)
    np.testing.assert_allclose(lh.history["loss"], kh.history["loss"], rtol=1e-4)


def test_class_and_sample_weight_together_multiply(rng):
    """Keras 3 refuses both at once; lamina multiplies them, as tf.keras did."""
    x, y = _blobs(rng, n=24)
    sw = rng.uniform(0.5, 2.0, len(x)).astype("float32")
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    model = lamina.Sequential(_mlp(layers, 3))
    model.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = model.get_weights()
    both = model.fit(x, y, sample_weight=sw, class_weight=cw, epochs=1, shuffle=False, verbose=0)
    model.set_weights(start)
    model.optimizer = lamina.optimizers.SGD(0.1)
    product = sw * np.array([cw[c] for c in y], dtype="float32")
    by_hand = model.fit(x, y, sample_weight=product, epochs=1, shuffle=False, verbose=0)
    assert both.history["loss"] == pytest.approx(by_hand.history["loss"], rel=1e-6)


def test_inputs_as_tensors_pandas_dataset_and_loader(rng):
    x, y = _blobs(rng, n=64)
    model = lamina.Sequential(_mlp(layers, 3))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = model.get_weights()
    losses = {}
    for kind, args in {
        "numpy": (x, y),
        "torch": (torch.tensor(x), torch.tensor(y)),
        "pandas": (pd.DataFrame(x), pd.Series(y)),
        "dataset": (TensorDataset(torch.tensor(x), torch.tensor(y)),),
        "loader": (DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=32),),
    }.items():
        model.set_weights(start)
        model.optimizer = lamina.optimizers.SGD(0.1)
        h = model.fit(*args, batch_size=32, epochs=1, shuffle=False, verbose=0)
        losses[kind] = h.history["loss"][0]
    assert max(losses.values()) - min(losses.values()) < 1e-5, losses


def test_loader_with_sample_weights_equals_array_sample_weights(rng):
    x, y = _blobs(rng, n=32)
    w = rng.uniform(0, 2, 32).astype("float32")
    model = lamina.Sequential(_mlp(layers, 3))
    model.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = model.get_weights()
    a = model.evaluate(x, y, sample_weight=w, verbose=0, batch_size=8)
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y), torch.tensor(w)), batch_size=8)
    model.set_weights(start)
    b = model.evaluate(loader, verbose=0)
    assert a == pytest.approx(b, rel=1e-6)


def test_multi_output_losses_weights_and_log_names_match_keras(rng):
    x, y = _blobs(rng, n=32)
    y2 = x[:, :1] * 2

    def build(L, Model):
        inp = L.Input((4,))
        h = L.Dense(8, activation="relu", name="h")(inp)
        return Model(inp, [L.Dense(3, activation="softmax", name="cls")(h), L.Dense(1, name="reg")(h)])

    km, lm = build(keras.layers, keras.Model), build(layers, lamina.Model)
    lm.set_weights(km.get_weights())
    for m, opt in ((km, keras.optimizers.SGD(0.05)), (lm, lamina.optimizers.SGD(0.05))):
        m.compile(optimizer=opt, loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mae"]])
    kh = km.fit(x, [y, y2], batch_size=8, epochs=2, shuffle=False, verbose=0)
    lh = lm.fit(x, [y, y2], batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert set(lh.history) == set(kh.history), (sorted(lh.history), sorted(kh.history))
    for key in kh.history:
        np.testing.assert_allclose(lh.history[key], kh.history[key], rtol=1e-4, err_msg=key)


def test_train_test_predict_on_batch_match_keras(rng):
    x, y = _blobs(rng, n=16)
    km = keras.Sequential(_mlp(keras.layers, 3))
    lm = lamina.Sequential(_mlp(layers, 3))
    lm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    lm.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    np.testing.assert_allclose(lm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=1e-5)
    np.testing.assert_allclose(lm.test_on_batch(x, y), km.test_on_batch(x, y), rtol=1e-5)
    np.testing.assert_allclose(lm.predict_on_batch(x), km.predict_on_batch(x), atol=1e-5)


def test_fit_leaves_model_in_inference_mode(rng):
    x, y = _blobs(rng, n=16)
    model = lamina.Sequential(_mlp(layers, 3))
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not any(m.training for m in model.modules())


def test_progress_bar_prints_epochs_and_metrics(rng, capsys):
    x, y = _blobs(rng, n=32)
    model = lamina.Sequential(_mlp(layers, 3))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "accuracy:" in out and "loss:" in out
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_train_on_batch_runs_one_forward_per_call(rng):
    """The pass that builds the model and checks targets runs once, not on every batch."""

    class Counting(layers.Layer):
        calls = 0

        def call(self, inputs):
            Counting.calls += 1
            return inputs

    model = lamina.Sequential([layers.Input((4,)), Counting(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _blobs(rng, n=8)
    model.train_on_batch(x, y)
    first = Counting.calls
    for _ in range(5):
        model.train_on_batch(x, y)
    assert Counting.calls - first == 5
    with pytest.raises(ValueError, match=r"labels must be in 0..2"):
        model.train_on_batch(x, y + 3)  # the target check still runs on every call
