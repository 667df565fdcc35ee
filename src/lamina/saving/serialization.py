"""Keras 3's object serialization API: `serialize_keras_object` / `deserialize_keras_object`,
`clone_model`, and a model's JSON (`to_json` / `model_from_json`).

Objects are written as Keras 3 writes them ({"module", "class_name", "config",
"registered_name"}), so a layer or model serialized here is read by Keras' own
`deserialize_keras_object` / `model_from_json`, and Keras' output is read here (through the same
translation as a .keras archive). As everywhere in lamina's saving, a class is found by name among
lamina's own and the registered ones, never imported from a module a config names.
"""

from __future__ import annotations

import inspect
import json

from lamina import activations, initializers, losses, metrics, optimizers, regularizers
from lamina.layers.base import Layer
from lamina.saving import config, keras_export, keras_import, registry
from lamina.saving.errors import SavingError

# lamina's module for each kind of object, and the Keras module its entries name.
_KINDS = ((initializers, initializers.Initializer, "keras.initializers"),
          (regularizers, regularizers.Regularizer, "keras.regularizers"),
          (optimizers, optimizers.Optimizer, "keras.optimizers"),
          (losses, losses.Loss, "keras.losses"),
          (metrics, metrics.Metric, "keras.metrics"))
_FUNCTION_MODULES = ((activations, "keras.activations"), (losses, "keras.losses"),
                     (metrics, "keras.metrics"))


def serialize_keras_object(obj):
    """A JSON-ready description of `obj` (a layer, model, initializer, regularizer, optimizer,
    loss, metric, or function), as Keras 3 writes it; plain values are returned as they are."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, Layer):
        return keras_export.keras_entry(config.serialize(obj), f"layer '{obj.name}'")
    registered = registry.registered_name(type(obj)) or registry.registered_name(obj)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        module = next((keras for lamina_module, keras in _FUNCTION_MODULES
                       if getattr(lamina_module, obj.__name__, None) is obj), obj.__module__)
        return {"module": module, "class_name": "function", "config": registered or obj.__name__,
                "registered_name": registered or obj.__name__}
    for _, base, keras_module in _KINDS:
        if isinstance(obj, base):
            return {"module": type(obj).__module__ if registered else keras_module,
                    "class_name": type(obj).__name__,
                    "config": serialize_keras_object(obj.get_config()),
                    "registered_name": registered}
    raise SavingError(f"serialize_keras_object: cannot describe {type(obj).__name__} {obj!r:.80} "
                      "(not a layer, model, initializer, regularizer, optimizer, loss, metric or "
                      "function).")


def deserialize_keras_object(config_, custom_objects=None, safe_mode=True, **kwargs):
    """The object a `serialize_keras_object` entry (lamina's or Keras') describes."""
    if safe_mode is not True:
        raise ValueError("deserialize_keras_object: lamina never runs code from a config, so "
                         f"safe_mode must be True. Received: safe_mode={safe_mode!r}")
    with config.custom_object_scope(custom_objects):
        return _deserialize(config_)


def _deserialize(value):
    if isinstance(value, list):
        return [_deserialize(v) for v in value]
    if not (isinstance(value, dict) and "class_name" in value):
        return {k: _deserialize(v) for k, v in value.items()} if isinstance(value, dict) else value
    class_name, registered = value.get("class_name"), value.get("registered_name")
    if class_name == "function":  # Keras writes its own functions with registered_name "function"
        return _function(registered if registered not in (None, "function") else value.get("config"))
    found = registry.get_registered_object(registered or class_name)
    if found is None and class_name in registry.builtin_layers() or \
            isinstance(found, type) and issubclass(found, Layer):
        where = "deserialize_keras_object"
        return config.deserialize(keras_import.translate(value, where), where=where)
    for module, base, _ in _KINDS:
        cls = found if found is not None else (
            getattr(module, class_name) if class_name in getattr(module, "__all__", ()) else None)
        if isinstance(cls, type) and issubclass(cls, base):
            inner = _deserialize(value.get("config") or {})
            return cls.from_config(inner) if hasattr(cls, "from_config") else cls(**inner)
    raise SavingError(
        f"deserialize_keras_object: lamina does not know the class '{registered or class_name}'. "
        "Register it with @lamina.saving.register_keras_serializable(), or pass custom_objects."
    )


def _function(name):
    found = registry.get_registered_object(name) if isinstance(name, str) else None
    for module, _ in _FUNCTION_MODULES:
        if found is None and isinstance(name, str) and name in getattr(module, "__all__", ()):
            found = getattr(module, name)
    if not callable(found):
        raise SavingError(f"deserialize_keras_object: lamina does not know the function {name!r}. "
                          "Register it with @lamina.saving.register_keras_serializable().")
    return found


# ----------------------------------------------------------------------------- models
def model_to_json(model, **kwargs) -> str:
    """The model's architecture as Keras 3's JSON (what `model.to_json()` returns)."""
    return json.dumps(serialize_keras_object(model), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from `model.to_json()` output, lamina's or Keras'."""
    try:
        entry = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise SavingError(f"model_from_json: the argument is not JSON ({e}).") from e
    return deserialize_keras_object(entry, custom_objects=custom_objects)


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """A new model with the same architecture and new weights, as Keras' `clone_model`.

    Args:
        model: a functional or Sequential model (a subclassed one must be registered).
        clone_function: called on each layer except the InputLayers; returns the layer to use
            in the clone (default: a new layer from the layer's config). Returning the layer
            itself shares it, weights included.
        input_tensors, call_function, recursive: not supported by lamina yet; a value other than
            the default is an error.
    """
    unsupported = {"input_tensors": input_tensors, "call_function": call_function,
                   "recursive": recursive or None, **kwargs}
    given = sorted(k for k, v in unsupported.items() if v is not None)
    if given:
        raise ValueError(f"clone_model: lamina does not support {', '.join(given)}; clone with "
                         "clone_function only.")
    from lamina.layers.input_layer import InputLayer

    clone_function = clone_function or _new_from_config

    originals = {layer.name: layer for layer in model.layers}

    def make_layer(entry, where):
        original = originals.get(entry.get("name", entry["config"].get("name")))
        if original is None or isinstance(original, InputLayer):
            return config.deserialize(entry, build=False, where=where)
        return clone_function(original)

    return config.model_from_config(type(model), model.get_config(), make_layer=make_layer)


def _new_from_config(layer):
    # Keras' default clone: the layer's own class from its config, so an unregistered class
    # clones without custom_objects.
    return type(layer).from_config(layer.get_config())
