"""Bad input gets a clear error that names the argument or layer and says what to do."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers


@pytest.fixture
def model():
    m = lamina.Sequential([layers.Input((4,), name="features"), layers.Dense(8, name="hidden"),
                           layers.Dense(3, activation="softmax", name="head")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_wrong_width_names_expected_shape(model):
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 4\).*'hidden'.*\(10, 5\)"):
        model.fit(np.zeros((10, 5), "float32"), np.zeros(10), verbose=0)


def test_wrong_rank_names_expected_shape(model):
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 4\)"):
        # (10, 4, 1) would be accepted: Keras 3 drops a trailing size-1 axis the Input lacks.
        model.predict(np.zeros((10, 4, 2), "float32"))


def test_wrong_rank_into_a_layer_names_the_layer():
    conv_like = layers.Dense(2, name="proj")
    conv_like(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"layer 'proj'.*min_ndim=2"):
        conv_like(torch.zeros(4))


def test_x_and_y_lengths_differ(model):
    with pytest.raises(ValueError, match=r"same number of samples; x has 10, y has 9"):
        model.fit(np.zeros((10, 4)), np.zeros(9), verbose=0)


def test_nan_in_x_names_the_sample(model):
    x = np.zeros((10, 4))
    x[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains NaN \(first in sample 7\)"):
        model.fit(x, np.zeros(10), verbose=0)


def test_empty_x(model):
    with pytest.raises(ValueError, match=r"`x` is empty"):
        model.fit(np.zeros((0, 4)), np.zeros(0), verbose=0)


def test_string_labels_say_encode(model):
    with pytest.raises(ValueError, match=r"holds strings.*integers"):
        model.fit(np.zeros((3, 4)), np.array(["a", "b", "a"]), verbose=0)


def test_label_out_of_range_before_training(model):
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"labels must be in 0..2.*range over 0..5.*6 units"):
        model.fit(np.zeros((6, 4)), np.arange(6), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kind,name,suggestion",
    [("loss", "sparse_categorical_crossentropi", "sparse_categorical_crossentropy"),
     ("optimizer", "adamm", "adam"),
     ("activation", "rleu", "relu")],
)
def test_unknown_names_suggest_the_closest(kind, name, suggestion):
    with pytest.raises(ValueError, match=rf"Unknown {kind}: '{name}'. Did you mean '{suggestion}'"):
        if kind == "activation":
            layers.Dense(2, activation=name)
        else:
            m = lamina.Sequential([layers.Input((2,)), layers.Dense(1)])
            m.compile(**{"optimizer": "adam", "loss": "mse", kind: name})
            m.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0)


def test_fit_before_compile(model):
    fresh = lamina.Sequential([layers.Dense(1)])
    with pytest.raises(RuntimeError, match=r"compile\(\) on model"):
        fresh.fit(np.zeros((2, 2)), np.zeros(2))


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match=r"Dense: `units` must be a positive int. Received: units=0"):
        layers.Dense(0)
    with pytest.raises(TypeError, match=r"Dense: unrecognized keyword arguments: \['unit'\]"):
        layers.Dense(3, unit=4)


def test_multi_input_count_and_names():
    a, b = layers.Input((2,), name="a"), layers.Input((3,), name="b")
    m = lamina.Model([a, b], layers.Dense(1)(a))
    with pytest.raises(ValueError, match=r"expects 2 input\(s\) \(\['a', 'b'\]\), but received 1"):
        m.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        m.predict({"a": np.zeros((4, 2))})
