"""The serialization registry: register_keras_serializable, get_config/from_config,
custom_object_scope, serialize/deserialize_keras_object, clone_model, to_json/model_from_json, and a
.keras round trip of a model holding a registered custom layer."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


@keras.saving.register_keras_serializable(package="compat")
class ScaledDense(layers.Layer):
    def __init__(self, units, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.factor = units, factor

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")

    def call(self, x):
        return self.factor * ops.matmul(x, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "factor": self.factor}


class Unregistered(layers.Layer):
    def call(self, x):
        return x * 3.0


inputs = keras.Input((4,))
outputs = layers.Dense(2)(Unregistered()(ScaledDense(3, factor=0.5, name="scaled")(inputs)))
model = seeded_weights(keras.Model(inputs, outputs, name="registry"))
probe = np.random.default_rng(21).normal(size=(3, 4)).astype("float32")
expected = model.predict(probe, verbose=0)

config = keras.saving.serialize_keras_object(ScaledDense(2, factor=3.0, name="alone"))
revived = keras.saving.deserialize_keras_object(config)
with keras.saving.custom_object_scope({"Unregistered": Unregistered}):
    from_json = keras.models.model_from_json(model.to_json())
    model.save("registry.keras")
    loaded = keras.saving.load_model("registry.keras")
from_json.set_weights(model.get_weights())
clone = keras.models.clone_model(model)
clone.set_weights(model.get_weights())
try:
    keras.saving.load_model("registry.keras")
    unscoped = "loaded"
except Exception:
    unscoped = "refused"

save_results({
    "registered_name": keras.saving.get_registered_name(ScaledDense),
    "registered_object": keras.saving.get_registered_object("compat>ScaledDense") is ScaledDense,
    "serialized_keys": sorted(config),
    "serialized_registered_name": config["registered_name"],
    "revived": [type(revived).__name__, revived.units, revived.factor, revived.name],
    "expected": expected,
    "from_json": from_json.predict(probe, verbose=0),
    "clone": clone.predict(probe, verbose=0),
    "clone_is_new": clone.layers[1] is not model.layers[1],
    "loaded": loaded.predict(probe, verbose=0),
    "loaded_types": [type(layer).__name__ for layer in loaded.layers],
    "without_scope": unscoped,
})
