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


X4 = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
Y4 = np.arange(10) % 3


@pytest.mark.parametrize("weight, message", [
    (np.where(np.arange(10) == 3, np.nan, 1.0), r"`sample_weight` contains NaN \(first in sample 3\)"),
    (np.where(np.arange(10) == 6, np.inf, 1.0), r"`sample_weight` contains infinite values"),
    (np.where(np.arange(10) == 2, -0.5, 1.0), r"`sample_weight` has negative weights \(first in "
                                               r"sample 2\)"),
])
def test_bad_sample_weights_are_refused_before_any_training(model, weight, message):
    before = [p.detach().clone() for p in model.parameters()]
    for call in (lambda: model.fit(X4, Y4, sample_weight=weight, verbose=0),
                 lambda: model.evaluate(X4, Y4, sample_weight=weight, verbose=0),
                 lambda: model.train_on_batch(X4, Y4, sample_weight=weight)):
        with pytest.raises(ValueError, match=message):
            call()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X4), torch.from_numpy(Y4),
                                       torch.from_numpy(weight)), batch_size=5)
    with pytest.raises(ValueError, match=message.split(r" \(")[0]):
        model.fit(loader, verbose=0)


@pytest.mark.parametrize("weight", [float("nan"), -1.0, float("inf"), "2", None])
def test_bad_class_weights_are_refused(model, weight):
    with pytest.raises(ValueError, match=r"`class_weight` must map each class to a finite, "
                                         r"non-negative number; received \{1: "):
        model.fit(X4, Y4, class_weight={0: 1.0, 1: weight, 2: 1.0}, verbose=0)


def test_nan_in_predicts_input_is_refused(model):
    for x in (np.where(np.arange(40).reshape(10, 4) == 29, np.nan, X4),  # sample 7
              torch.from_numpy(X4).index_fill(0, torch.tensor([7]), float("-inf"))):
        for call, data, kwargs in ((model.predict, x, {}), (model.predict, x[6:8], {}),
                                   (model.predict, x, {"batch_size": 3}),
                                   (model.predict_on_batch, x, {})):
            with pytest.raises(ValueError, match=r"`x` contains (NaN|infinite values) \(first in "
                                                 r"sample [17]\)"):
                call(data, **kwargs)


def test_a_finite_input_whose_sum_overflows_is_accepted(model):
    x = np.full((10, 4), 3e38, "float32")  # finite, but its float32 sum is infinite
    assert model.predict(x, verbose=0).shape == (10, 3)


def test_integer_and_boolean_inputs_are_cast_to_the_inputs_float_type_as_keras(model):
    import keras

    ints = np.arange(40).reshape(10, 4) % 5
    reference = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    twin = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    twin(torch.zeros(1, 4))
    kernel = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    reference.layers[-1].set_weights([kernel, np.zeros(3, "float32")])
    twin.layers[-1].set_weights([kernel, np.zeros(3, "float32")])
    for x in (ints, ints.astype("int32"), ints > 2, torch.from_numpy(ints)):
        expected = reference.predict(np.asarray(x), verbose=0)
        np.testing.assert_allclose(twin.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(twin.predict_on_batch(x), expected, rtol=1e-6, atol=1e-7)
    inp = layers.Input((4,))
    functional = lamina.Model(inp, layers.Dense(2)(inp))
    assert functional.predict(ints, verbose=0).dtype == np.float32
    history = model.fit(ints, Y4, epochs=1, verbose=0).history  # fit and evaluate cast too
    assert np.isfinite(history["loss"][0]) and np.isfinite(model.evaluate(ints, Y4, verbose=0)[0])



@pytest.mark.parametrize("first", ["Dense", "Conv1D", "Embedding"])
def test_a_sequential_without_an_input_casts_integer_data_as_keras(first):
    # Keras builds a deferred Sequential on a float Input, so integer data are cast for a Dense
    # or Conv1D (torch refused them: "Input type (long int) and bias type (float)"), and an
    # Embedding casts them back to indices.
    import keras

    ints = np.arange(48).reshape(4, 6, 2) % 5
    args = {"Dense": (3,), "Conv1D": (3, 2), "Embedding": (5, 3)}[first]
    reference = keras.Sequential([getattr(keras.layers, first)(*args)])
    ours = lamina.Sequential([getattr(layers, first)(*args)])
    expected = reference.predict(ints, verbose=0)
    ours.predict(ints, verbose=0)  # the first call builds it, on integer data
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours.predict(ints, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_complex_inputs_are_refused_naming_the_argument_or_input(model):
    z = X4.astype("complex64") * 1j
    with pytest.raises(ValueError, match=r"`x` holds complex numbers \(torch.complex64\)"):
        model.predict(z, verbose=0)
    with pytest.raises(ValueError, match=r"`y` holds complex numbers"):
        model.fit(X4, Y4.astype("complex64"), verbose=0)
    with pytest.raises(ValueError, match=r"Sequential '.*' takes real numbers .* complex"):
        model(torch.from_numpy(z))
    inp = layers.Input((4,), name="signal")
    functional = lamina.Model(inp, layers.Dense(2)(inp))
    with pytest.raises(ValueError, match=r"Input 'signal' of model '.*' takes real numbers"):
        functional(torch.from_numpy(z))


def test_a_list_into_a_single_input_model(model):
    """A one-element list is the input, as in Keras; more arrays are an error naming `x` (Keras'
    Sequential silently takes the first one)."""
    expected = model.predict(X4, verbose=0)
    np.testing.assert_array_equal(model.predict([X4], verbose=0), expected)
    np.testing.assert_array_equal(model.predict_on_batch([X4]), expected)
    model.fit([X4], Y4, verbose=0)
    with pytest.raises(ValueError, match=r"has one input, but received a list of 2 arrays \(as `x`\)"):
        model.predict([X4, X4], verbose=0)
    inp = layers.Input((4,), name="only")
    functional = lamina.Model(inp, layers.Dense(2)(inp))
    with pytest.raises(ValueError, match=r"expects 1 input\(s\) \(\['only'\]\), but received 2"):
        functional.predict([X4, X4], verbose=0)
