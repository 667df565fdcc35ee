"""Keras 3's serialization surface: the registry, custom_object_scope, serialize/deserialize of
objects, to_json / model_from_json and clone_model. Keras itself reads what lamina writes (and the
other way round); a custom layer is written twice, once per library, under the same name.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.saving import SavingError

RNG = np.random.default_rng(5)
X = RNG.normal(size=(4, 6)).astype("float32")


@lamina.saving.register_keras_serializable(package="compat")
class Scale(lamina.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.offset = self.add_weight(name="offset", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x * self.factor + self.offset

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class keras_side:  # noqa: N801  a namespace, so that Keras' twin has the same class name
    """Keras names a layer's group in the weights file after its class: the twin is `Scale` too."""

    @keras.saving.register_keras_serializable(package="compat")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.offset = self.add_weight(name="offset", shape=(input_shape[-1],),
                                          initializer="zeros")

        def call(self, x):
            return x * self.factor + self.offset

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}


KerasScale = keras_side.Scale


def _model():
    inp = layers.Input((6,))
    h = Scale(3.0)(layers.Dense(5, activation="relu")(inp))
    model = lamina.Model(inp, layers.Dense(2)(h))
    model.set_weights([RNG.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_registered_names_agree_with_keras():
    assert lamina.saving.get_registered_name(Scale) == keras.saving.get_registered_name(KerasScale)
    assert lamina.saving.get_registered_object("compat>Scale") is Scale
    assert lamina.utils.get_registered_object("compat>Scale") is Scale
    assert lamina.saving.get_registered_name(layers.Dense) == "Dense"
    assert lamina.utils.register_keras_serializable is lamina.saving.register_keras_serializable
    assert lamina.utils.get_custom_objects()["compat>Scale"] is Scale
    assert keras.saving.get_custom_objects()["compat>Scale"] is KerasScale


def test_custom_layer_archive_opens_in_keras_with_its_registered_twin(tmp_path):
    model = _model()
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert type(restored.layers[2]) is KerasScale and restored.layers[2].factor == 3.0
    _close(restored.predict(X, verbose=0), model.predict(X))


def test_custom_object_scope_maps_a_keras_name_to_a_lamina_class(tmp_path):
    inp = keras.Input((6,))
    keras_model = keras.Model(inp, KerasScale(0.5, name="s")(inp))
    keras_model.layers[1].offset.assign(np.arange(6, dtype="float32"))
    keras_model.save(tmp_path / "k.keras")

    class Other(Scale):
        pass

    for scope in (lamina.saving.custom_object_scope, lamina.utils.CustomObjectScope):
        with scope({"compat>Scale": Other}):
            model = lamina.load_model(tmp_path / "k.keras")
        assert type(model.get_layer("s")) is Other
        _close(model.predict(X), keras_model.predict(X, verbose=0))
    with pytest.raises(TypeError, match="dicts"):
        lamina.saving.custom_object_scope(["not", "a", "dict"])


def test_to_json_read_by_keras_and_back():
    model = _model()
    keras_model = keras.models.model_from_json(model.to_json())
    keras_model.set_weights(model.get_weights())
    _close(keras_model.predict(X, verbose=0), model.predict(X))
    again = lamina.models.model_from_json(keras_model.to_json())
    assert [type(layer).__name__ for layer in again.layers] == \
        [type(layer).__name__ for layer in model.layers]
    again.set_weights(model.get_weights())
    _close(again.predict(X), model.predict(X))
    with pytest.raises(SavingError, match="not JSON"):
        lamina.models.model_from_json("{nope")


@pytest.mark.parametrize("make", [
    lambda lib: lib.layers.Dense(3, activation="tanh", kernel_initializer="he_normal"),
    lambda lib: lib.initializers.RandomNormal(mean=0.5, stddev=2.0),
    lambda lib: lib.regularizers.L2(0.03),
    lambda lib: lib.optimizers.Adam(learning_rate=0.01),
    lambda lib: lib.losses.SparseCategoricalCrossentropy(from_logits=True),
    lambda lib: lib.activations.relu,
])
def test_objects_cross_between_libraries(make):
    """Each library's serialized object deserializes in the other to the same class and settings."""
    ours, theirs = make(lamina), make(keras)
    from_lamina = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(lamina.saving.serialize_keras_object(ours))))
    from_keras = lamina.saving.deserialize_keras_object(keras.saving.serialize_keras_object(theirs))
    if callable(ours) and not hasattr(ours, "get_config"):
        assert from_lamina is theirs and from_keras is ours
        return
    assert type(from_lamina) is type(theirs) and type(from_keras) is type(ours)
    shared = set(ours.get_config()) & set(theirs.get_config()) - {"name"}
    assert shared
    for key in shared:
        _equal(from_lamina.get_config()[key], theirs.get_config()[key], key)
        _equal(from_keras.get_config()[key], ours.get_config()[key], key)


def _equal(a, b, key):
    assert a == (pytest.approx(b) if isinstance(b, float) else b), key  # Keras' rates are float32


def test_clone_model_has_new_weights_and_the_same_config():
    model = _model()
    clone = lamina.models.clone_model(model)
    assert clone.get_config() == model.get_config()
    assert not any(np.allclose(a, b) for a, b in zip(clone.get_weights(), model.get_weights())
                   if a.std() > 0)
    clone.set_weights(model.get_weights())
    _close(clone.predict(X), model.predict(X))


def test_clone_function_sees_every_layer_but_inputs():
    model = _model()
    seen = []

    def share_dense(layer):
        seen.append(type(layer).__name__)
        return layer if isinstance(layer, layers.Dense) else layer.__class__.from_config(
            layer.get_config())

    clone = lamina.models.clone_model(model, clone_function=share_dense)
    assert seen == ["Dense", "Scale", "Dense"]
    assert clone.layers[1] is model.layers[1] and clone.layers[2] is not model.layers[2]
    sequential = lamina.Sequential([layers.Input((6,)), layers.Dense(2)])
    renamed = lamina.models.clone_model(
        sequential, clone_function=lambda layer: layers.Dense(2, name="renamed_" + layer.name))
    assert [layer.name for layer in renamed.layers] == ["renamed_" + sequential.layers[0].name]
    with torch.no_grad():
        assert renamed(torch.ones(1, 6)).shape == (1, 2)
    with pytest.raises(ValueError, match="input_tensors"):
        lamina.models.clone_model(model, input_tensors=[layers.Input((6,))])


@lamina.saving.register_keras_serializable(package="compat")
class TwoDense(lamina.Model):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = layers.Dense(units, activation="relu")
        self.head = layers.Dense(2)

    def call(self, x):
        return self.head(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class keras_models:  # noqa: N801  a namespace, so that Keras' twin has the same class name
    @keras.saving.register_keras_serializable(package="compat")
    class TwoDense(keras.Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(self.hidden(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}


def test_subclassed_model_archives_cross_both_ways(tmp_path):
    model = TwoDense(5)
    model(torch.as_tensor(X))  # built outside predict, whose inference tensors refuse set_weights
    model.set_weights([RNG.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    lamina.models.save_model(model, tmp_path / "l.keras")
    keras_model = keras.saving.load_model(tmp_path / "l.keras")
    _close(keras_model.predict(X, verbose=0), model.predict(X))
    # Keras writes a subclassed model's layers under their attribute names ("hidden", "head").
    keras_model.set_weights([w + 1.0 for w in keras_model.get_weights()])
    keras_model.save(tmp_path / "k.keras")
    restored = lamina.load_model(tmp_path / "k.keras")
    _close(restored.predict(X), keras_model.predict(X, verbose=0))
