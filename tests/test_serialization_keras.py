"""get/serialize/deserialize of initializers, regularizers, activations and losses, in Keras 3's
config format: lamina writes what Keras writes and reads what Keras writes."""

import numpy as np
import pytest
import torch

from lamina import activations, initializers, losses, regularizers
from tests.parity import keras

# Keras 3.15 cannot build "constant" from its name, and writes Identity's config without its gain.
INITIALIZERS = ["zeros", "ones", "random_normal", "random_uniform", "truncated_normal",
                "variance_scaling", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "lecun_uniform", "lecun_normal", "orthogonal"]


def _without_fan_axes(config):
    """Keras 3.13+ adds input_axes/output_axes (None by default) to the variance-scaling family."""
    inner = {k: v for k, v in config["config"].items() if k not in ("input_axes", "output_axes")}
    return {**config, "config": inner}


@pytest.mark.parametrize("name", INITIALIZERS)
def test_initializer_configs_match_keras_both_ways(name):
    ours, theirs = initializers.get(name), keras.initializers.get(name)
    assert initializers.serialize(ours) == _without_fan_axes(keras.initializers.serialize(theirs))
    back = initializers.deserialize(keras.initializers.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    assert type(initializers.get(initializers.serialize(ours))) is type(ours)


def test_initializer_with_arguments_round_trips_through_keras():
    ours = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=4)
    theirs = keras.initializers.deserialize(initializers.serialize(ours))
    assert theirs.get_config() == ours.get_config()
    assert initializers.deserialize(keras.initializers.serialize(theirs)).get_config() == ours.get_config()
    with pytest.raises(ValueError, match="Did you mean"):
        initializers.deserialize({"class_name": "GlorotUniforme", "config": {}})


@pytest.mark.parametrize("make", [lambda m: m.l2(0.01), lambda m: m.l1(0.3), lambda m: m.L1L2(0.1, 0.2),
                                  lambda m: m.get("l2"), lambda m: m.L1()],
                         ids=["l2", "l1", "L1L2", "get", "L1"])
def test_regularizers_match_keras(make, rng):
    ours, theirs = make(regularizers), make(keras.regularizers)
    ours_config, theirs_config = regularizers.serialize(ours), keras.regularizers.serialize(theirs)
    assert {**ours_config, "config": None} == {**theirs_config, "config": None}
    assert ours_config["config"] == pytest.approx(theirs_config["config"])  # Keras keeps float32
    w = rng.standard_normal((4, 3)).astype("float32")
    expected = float(theirs(keras.ops.convert_to_tensor(w)))
    assert float(ours(torch.tensor(w))) == pytest.approx(expected, rel=1e-5)
    back = regularizers.deserialize(theirs_config)
    assert type(back) is type(ours)
    assert regularizers.l2 is regularizers.L2 and regularizers.serialize(None) is None


KERAS_ACTIVATIONS = ["relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "silu", "softplus",
                     "softsign", "exponential", "linear", "leaky_relu", "relu6", "hard_sigmoid", "mish",
                     "log_softmax"]  # Keras 3.15 cannot deserialize its own "swish"


@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activation_names_match_keras(name, rng):
    ours, theirs = activations.deserialize(name), keras.activations.deserialize(name)
    assert activations.serialize(ours) == keras.activations.serialize(theirs)
    x = rng.standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(ours(torch.tensor(x)).numpy(), keras.ops.convert_to_numpy(theirs(x)),
                               rtol=1e-5, atol=1e-6)
    assert activations.get(None) is activations.linear
    assert activations.deserialize("mine", custom_objects={"mine": torch.sin}) is torch.sin


LOSSES = [("MeanSquaredError", {}),
          ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
          ("SparseCategoricalCrossentropy", {}), ("BinaryCrossentropy", {"from_logits": True}),
          ("Huber", {}),  # Keras 3.15 leaves delta out of Huber's config
          ("KLDivergence", {}), ("CosineSimilarity", {"axis": -1})]


# Entries lamina's config keeps that Keras 3.15's leaves out.
LOSS_KEYS_KERAS_LACKS = {"Huber": {"delta"}, "SparseCategoricalCrossentropy": {"axis"},
                         "CosineSimilarity": {"axis"}}


@pytest.mark.parametrize("name,kwargs", LOSSES, ids=[n for n, _ in LOSSES])
def test_loss_configs_match_keras_both_ways(name, kwargs):
    ours, theirs = getattr(losses, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    ours_config, theirs_config = losses.serialize(ours), keras.losses.serialize(theirs)
    assert set(ours_config["config"]) - LOSS_KEYS_KERAS_LACKS.get(name, set()) == set(theirs_config["config"])
    shared = set(ours_config["config"]) & set(theirs_config["config"])
    assert {k: ours_config["config"][k] for k in shared} == {k: theirs_config["config"][k] for k in shared}
    assert {**ours_config, "config": None} == {**theirs_config, "config": None}
    back = losses.deserialize(theirs_config)
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    assert type(keras.losses.deserialize(ours_config)) is type(theirs)


def test_loss_names_and_functions():
    assert type(losses.deserialize("mse")) is losses.MeanSquaredError
    assert losses.serialize(losses.mean_squared_error) == "mean_squared_error"
    assert type(losses.get({"class_name": "function", "config": "mae"})) is losses.MeanAbsoluteError
    with pytest.raises(ValueError, match="neither a Loss"):
        losses.serialize(lambda y, p: y)
