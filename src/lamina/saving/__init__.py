"""Saving and loading: lamina's .lamina format, Keras 3's .keras and .weights.h5 (read and written),
and Keras' serialization registry.

    model.save("model.keras")                   # Keras 3 archive, opened by Keras itself
    model.save("model.lamina")                  # lamina's own: + optimizer state, lamina-only layers
    model = lamina.load_model("model.keras")    # also .lamina and legacy Keras .h5 files
    model.save_weights("w.weights.h5"); model.load_weights("w.weights.h5")   # or .safetensors

Nothing is pickled and nothing from a file is ever executed; every problem with a file is a
`SavingError`. Custom layers are saved by name once registered with
`@register_keras_serializable()` (also spelled `register_serializable`). See docs/saving.md.
"""

from lamina.saving.config import CustomObjectScope, custom_object_scope, deserialize, serialize
from lamina.saving.errors import SavingError
from lamina.saving.native import load_model, load_weights, save_model, save_weights
from lamina.saving.registry import (
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    register_serializable,
)
from lamina.saving.serialization import (
    clone_model,
    deserialize_keras_object,
    model_from_json,
    serialize_keras_object,
)

__all__ = ["SavingError", "load_model", "save_model", "save_weights", "load_weights",
           "register_serializable", "register_keras_serializable", "get_registered_object",
           "get_registered_name", "get_custom_objects", "custom_object_scope", "CustomObjectScope",
           "serialize", "deserialize", "serialize_keras_object", "deserialize_keras_object",
           "clone_model", "model_from_json"]
