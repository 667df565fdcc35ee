"""The time-series zoo: architectures against the same models built in Keras, the protocol's
numbers by hand, and quick runs of every model, norm and CLI path."""

import json

import numpy as np
import pytest

from lamina import tsc
from lamina.cli import main
from lamina.datasets import load_ucr
from tests.parity import keras


def _keras_fcn(shape, k, init="glorot_uniform"):
    L = keras.layers
    inp = L.Input(shape)
    h = inp
    for f, s in ((128, 8), (256, 5), (128, 3)):
        h = L.Conv1D(f, s, padding="same", kernel_initializer=init)(h)
        h = L.Activation("relu")(L.BatchNormalization()(h))
    return inp, L.GlobalAveragePooling1D()(h)


def _keras_model(name, shape, k):
    L = keras.layers
    if name == "fcn":
        inp, h = _keras_fcn(shape, k)
        return keras.Model(inp, L.Dense(k, activation="softmax")(h))
    if name == "resnet":
        inp = L.Input(shape)
        h, c = inp, shape[-1]
        for f in (64, 128, 128):
            y = L.Activation("relu")(L.BatchNormalization()(L.Conv1D(f, 8, padding="same")(h)))
            y = L.Activation("relu")(L.BatchNormalization()(L.Conv1D(f, 5, padding="same")(y)))
            y = L.BatchNormalization()(L.Conv1D(f, 3, padding="same")(y))
            s = L.Conv1D(f, 1, padding="same")(h) if c != f else h
            h, c = L.Activation("relu")(L.Add()([y, L.BatchNormalization()(s)])), f
        return keras.Model(inp, L.Dense(k, activation="softmax")(L.GlobalAveragePooling1D()(h)))
    if name == "mlp":
        inp = L.Input(shape)
        h = L.Dropout(0.1)(L.Flatten()(inp))
        for r in (0.2, 0.2, 0.3):
            h = L.Dropout(r)(L.Dense(500, activation="relu")(h))
        return keras.Model(inp, L.Dense(k, activation="softmax")(h))
    inp, h = _keras_fcn(shape, k, "he_uniform")
    r = L.Dropout(0.8)(L.LSTM(8)(L.Permute((2, 1))(inp)))
    return keras.Model(inp, L.Dense(k, activation="softmax")(L.Concatenate()([r, h])))


@pytest.mark.parametrize("name", ["fcn", "resnet", "mlp", "lstm_fcn"])
def test_architecture_matches_keras_build(name, rng):
    shape, k = (24, 1), 3
    ours = tsc.MODELS[name](shape, k)
    theirs = _keras_model(name, shape, k)
    assert ours.count_params() == theirs.count_params()
    assert sorted(w.shape for w in ours.get_weights()) == sorted(w.shape for w in theirs.get_weights())
    if name in ("fcn", "mlp"):  # same layer order: the same weights give the same predictions
        ours.set_weights(theirs.get_weights())
        x = rng.standard_normal((4, *shape)).astype("float32")
        np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("name,n,expected", [
    ("fcn", 50, 5), ("fcn", 67, 6), ("fcn", 200, 16), ("fcn", 3, 1),
    ("resnet", 200, 20), ("resnet", 1000, 64), ("mlp", 1000, 16),
    ("lstm_fcn", 50, 50), ("lstm_fcn", 500, 128),
])
def test_protocol_batch_sizes(name, n, expected):
    assert tsc.PROTOCOLS[name].batch_size(n) == expected


def test_protocol_constants():
    fcn, lstm = tsc.PROTOCOLS["fcn"], tsc.PROTOCOLS["lstm_fcn"]
    assert (fcn.epochs, fcn.reduce_factor, fcn.reduce_patience, fcn.min_lr) == (2000, 0.5, 50, 1e-4)
    assert lstm.reduce_factor == pytest.approx(2 ** (-1 / 3))
    assert tsc.PROTOCOLS["mlp"].make_optimizer().learning_rate == 1.0


@pytest.mark.parametrize("norm", ["bn", "ln", "in", "gn", "sn"])
@pytest.mark.parametrize("name", ["fcn", "resnet", "lstm_fcn", "mlp"])
def test_every_model_and_norm_trains_a_step(name, norm, rng):
    x = rng.standard_normal((8, 16, 2)).astype("float32")
    model = tsc.MODELS[name]((16, 2), 3, norm=norm)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_train_and_evaluate_keeps_lowest_training_loss_weights():
    data = load_ucr("ItalyPowerDemand")
    model, history, result = tsc.train_and_evaluate("fcn", data, epochs=4, seed=0, verbose=0)
    losses = history.history["loss"]
    assert result["best_epoch"] == int(np.argmin(losses))
    assert result["train_loss"] == pytest.approx(min(losses))
    test = model.evaluate(data.x_test, data.y_test, return_dict=True, verbose=0)
    assert test["accuracy"] == pytest.approx(result["test_accuracy"])


def test_cli_writes_model_plot_and_results(tmp_path, capsys):
    assert main(["tsc", "ItalyPowerDemand", "--model", "mlp", "--epochs", "2", "--runs", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "published: 0.954" in out and "over 2 run(s)" in out and "Total params" in out
    results = json.loads((tmp_path / "ItalyPowerDemand_mlp_results.json").read_text())
    assert [r["seed"] for r in results["runs"]] == [0, 1]
    assert (tmp_path / "ItalyPowerDemand_mlp.lamina").stat().st_size > 0
    assert (tmp_path / "ItalyPowerDemand_mlp_history.png").stat().st_size > 0


def test_cli_ablate_norm_prints_each_norm(capsys):
    assert main(["tsc", "ItalyPowerDemand", "--model", "fcn", "--epochs", "1", "--ablate-norm"]) == 0
    out = capsys.readouterr().out
    for norm in ("bn", "ln", "in", "gn", "sn"):
        assert f"│ {norm:>4} │" in out or f" {norm} " in out
    assert "normalization ablation" in out
