"""Keras 3's config dict of a built-in object, {"module", "class_name", "config",
"registered_name"}, written and read by each namespace's serialize/deserialize."""

from __future__ import annotations

from lamina.utils.naming import lookup


def to_config_dict(obj, module: str, builtins: dict) -> dict:
    """`obj` as Keras writes it: under Keras' `module` when it is one of `builtins` (class name ->
    class), else under its own module and class name."""
    cls = type(obj)
    builtin = builtins.get(cls.__name__) is cls
    return {"module": module if builtin else cls.__module__, "class_name": cls.__name__,
            "config": obj.get_config(), "registered_name": None if builtin else cls.__name__}


def from_config_dict(kind: str, config: dict, builtins: dict, custom_objects=None):
    """The object a Keras config dict describes; `custom_objects` adds classes by name."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Cannot read a {kind} from {config!r}: expected Keras' config dict with "
                         "'class_name' and 'config'.")
    classes = {**builtins, **(custom_objects or {})}
    name = config.get("registered_name") if config.get("registered_name") in classes else config["class_name"]
    cls = lookup(kind, name, classes)
    return cls.from_config(config.get("config") or {})
