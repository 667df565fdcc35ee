"""Callbacks: the decision logic driven side by side with Keras' on the same sequences of logs,
and the file/model effects checked by hand."""

import csv

import numpy as np
import pytest

import lamina
from lamina import callbacks, layers
from tests.parity import keras


class FakeModel:
    """What the callbacks touch: stop_training, weights and the optimizer's learning rate."""

    class Opt:
        learning_rate = 0.1

    def __init__(self):
        self.stop_training = False
        self.optimizer = self.Opt()
        self.version = 0

    def get_weights(self):
        return [np.array(self.version)]

    def set_weights(self, w):
        self.version = int(w[0])


def _drive(cb, values, key):
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    trace = []
    for epoch, v in enumerate(values):
        model.version = epoch
        cb.on_epoch_end(epoch, {key: v})
        trace.append((model.stop_training, float(model.optimizer.learning_rate)))
        if model.stop_training:
            break
    return trace


LOSSES = [1.0, 0.8, 0.81, 0.79, 0.795, 0.80, 0.82, 0.78, 0.9, 0.91, 0.92, 0.93]


@pytest.mark.parametrize("kwargs", [
    {"patience": 2}, {"patience": 0}, {"patience": 3, "min_delta": 0.02},
    {"patience": 2, "mode": "max", "monitor": "val_accuracy"}, {"patience": 1, "baseline": 0.85},
    {"patience": 2, "start_from_epoch": 3},
])
def test_early_stopping_stops_where_keras_stops(kwargs):
    key = kwargs.get("monitor", "val_loss")
    k = _drive(keras.callbacks.EarlyStopping(**kwargs), LOSSES, key)
    ours = _drive(callbacks.EarlyStopping(**kwargs), LOSSES, key)
    assert [s for s, _ in ours] == [s for s, _ in k]


@pytest.mark.parametrize("kwargs", [
    {"patience": 1, "factor": 0.5}, {"patience": 2, "factor": 0.1, "cooldown": 1},
    {"patience": 1, "factor": 0.5, "min_lr": 0.03}, {"patience": 1, "min_delta": 0.05, "factor": 0.5},
])
def test_reduce_lr_on_plateau_follows_keras(kwargs):
    k = _drive(keras.callbacks.ReduceLROnPlateau(monitor="loss", **kwargs), LOSSES, "loss")
    ours = _drive(callbacks.ReduceLROnPlateau(monitor="loss", **kwargs), LOSSES, "loss")
    np.testing.assert_allclose([lr for _, lr in ours], [lr for _, lr in k], rtol=1e-6)


def _small(rng):
    x = rng.standard_normal((32, 3)).astype("float32")
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer=lamina.optimizers.SGD(0.05), loss="mse")
    return model, x, x.sum(1, keepdims=True)


def test_early_stopping_restores_best_weights(rng):
    model, x, y = _small(rng)
    seen = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        (logs["val_loss"], [w.copy() for w in model.get_weights()])))
    # A huge learning rate after epoch 2 makes val_loss blow up, so epoch 2 stays the best.
    blow_up = callbacks.LearningRateScheduler(lambda e, lr: 0.05 if e < 3 else 5.0)
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=20, validation_split=0.25, callbacks=[blow_up, record, es], verbose=0)
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    assert len(seen) < 20
    for got, want in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(got, want)


def test_scheduler_terminate_on_nan_and_csv_logger(rng, tmp_path):
    model, x, y = _small(rng)
    lrs = []
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    log = tmp_path / "log.csv"
    watch = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: lrs.append(model.optimizer.learning_rate))
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched, watch, callbacks.CSVLogger(log)])
    assert lrs == pytest.approx([0.1, 0.05, 0.025])
    rows = list(csv.DictReader(open(log)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], hist.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(hist.history["learning_rate"], [0.1, 0.05, 0.025])

    x_bad = x.copy()
    model.compile(optimizer=lamina.optimizers.SGD(1e30), loss="mse")
    seen = []
    model.fit(x_bad * 1e10, y, epochs=5, batch_size=4, verbose=0, callbacks=[
        callbacks.TerminateOnNaN(), callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert len(seen) <= 1


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(ValueError, match="unknown hooks"):
        callbacks.LambdaCallback(on_epoch_finish=print)
