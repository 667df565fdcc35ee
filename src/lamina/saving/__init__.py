"""Saving and loading: the .lamina format, Keras import, and the serialization registry.

    model.save("model.lamina")                  # config + weights (+ compile settings, optimizer)
    model = lamina.load_model("model.lamina")   # also reads Keras 3 .keras and legacy .h5 files
    model.save_weights("w.safetensors"); model.load_weights("w.safetensors")

Nothing is pickled and nothing from a file is ever executed; every problem with a file is a
`SavingError`. Custom layers are saved by name once registered with `@register_serializable()`.
"""

from lamina.saving.config import custom_object_scope, deserialize, serialize
from lamina.saving.errors import SavingError
from lamina.saving.native import load_model, load_weights, save_model, save_weights
from lamina.saving.registry import get_registered_object, register_serializable

__all__ = ["SavingError", "load_model", "save_model", "save_weights", "load_weights",
           "register_serializable", "get_registered_object", "custom_object_scope", "serialize",
           "deserialize"]
