"""`activity_regularizer=` on any layer, as Keras 3: the penalty of the layer's output divided by
the batch size joins the loss. Oracle: Keras 3 itself, same weights and data."""

import numpy as np
import pytest

import lamina
from tests.parity import keras


def _fit(k, x, y, weights):
    model = k.Sequential([
        k.layers.Input((4,)),
        k.layers.Dense(5, activation="relu", activity_regularizer=k.regularizers.L2(0.1)),
        k.layers.Dense(3, activation="softmax", activity_regularizer="l1"),
    ])
    model.set_weights(weights)
    model.compile(optimizer=k.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return model, history.history["loss"]


def test_activity_penalties_join_the_loss_as_in_keras():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 4)).astype("float32")
    y = rng.integers(0, 3, 24)
    shapes = [(4, 5), (5,), (5, 3), (3,)]
    weights = [(rng.standard_normal(s) * 0.5).astype("float32") for s in shapes]
    keras_model, keras_loss = _fit(keras, x, y, weights)
    lamina_model, lamina_loss = _fit(lamina, x, y, weights)
    np.testing.assert_allclose(lamina_loss, keras_loss, rtol=1e-5)
    for got, want in zip(lamina_model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_config_round_trip_and_bad_identifier():
    config = lamina.layers.Dense(2, activity_regularizer="l2").get_config()
    keras_entry = keras.layers.Dense(2, activity_regularizer="l2").get_config()["activity_regularizer"]
    assert config["activity_regularizer"] == keras_entry
    assert lamina.layers.Dense.from_config(config).get_config() == config
    with pytest.raises(ValueError):
        lamina.layers.Dense(2, activity_regularizer="no_such_regularizer")


def test_model_losses_list_added_terms_first_then_weight_penalties_as_keras():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((16, 4)).astype("float32")

    def losses(k):
        inner = k.Sequential([k.layers.Input((3,)),
                              k.layers.Dense(2, kernel_regularizer="l2", activity_regularizer="l1")])
        model = k.Sequential([
            k.layers.Input((4,)),
            k.layers.Dense(3, kernel_regularizer=k.regularizers.l2(0.01), bias_regularizer="l1"),
            inner,
            k.layers.Dense(1, activity_regularizer=k.regularizers.L1L2(l1=0.01, l2=0.02)),
        ])
        weights = np.random.default_rng(1)
        model.set_weights([weights.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
        model(x)
        return [float(np.asarray(loss.detach().cpu())) for loss in model.losses]

    np.testing.assert_allclose(losses(lamina), losses(keras), rtol=1e-5)
