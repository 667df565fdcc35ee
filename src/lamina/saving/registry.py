"""The serialization registry: which class a config's `class_name` may rebuild.

A config names classes, never Python import paths, and only two kinds of class can be rebuilt
from one: lamina's own public layers and models, and classes the user registered with
`@register_serializable` (or passed as `custom_objects` to `load_model`). Nothing is imported or
looked up by module name, so a file cannot make lamina run code it did not already trust.
"""

from __future__ import annotations

import inspect

from lamina.saving.errors import SavingError

_CUSTOM_OBJECTS: dict[str, type] = {}


def register_serializable(package: str = "Custom", name: str | None = None):
    """Class decorator that lets `load_model` rebuild a custom layer or model from its config.

    The class is saved under the name "package>name" (as Keras'
    `register_keras_serializable`); it must implement `get_config()` so that
    `cls(**config)` rebuilds it, or a `from_config` classmethod.

    Args:
        package: a namespace for the name, so that two libraries' "MyLayer" do not clash.
        name: the name to register (default: the class name).

    Example:
        >>> @lamina.saving.register_serializable(package="my_project")
        ... class Scale(lamina.layers.Layer):
        ...     def __init__(self, factor=2.0, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.factor = factor
        ...     def call(self, x):
        ...         return x * self.factor
        ...     def get_config(self):
        ...         return {**super().get_config(), "factor": self.factor}
    """
    if not isinstance(package, str) or not package or ">" in package:
        raise ValueError(
            f"register_serializable: `package` must be a non-empty string without '>'. "
            f"Received: package={package!r}"
        )

    def decorator(cls):
        if not (inspect.isclass(cls) or callable(cls)) or not hasattr(cls, "__name__"):
            raise TypeError(
                "register_serializable decorates classes (layers, models, losses, ...) and "
                f"functions. Received: {cls!r}"
            )
        key = f"{package}>{name or cls.__name__}"
        # Registering again under the same key replaces the class: re-running a notebook cell
        # that defines a layer must not fail.
        _CUSTOM_OBJECTS[key] = cls
        cls._lamina_registered_name = key
        return cls

    return decorator


register_keras_serializable = register_serializable


def get_custom_objects() -> dict:
    """The registry itself ({"package>name": class or function}), as Keras' `get_custom_objects`:
    adding to it registers, clearing it forgets every registration."""
    return _CUSTOM_OBJECTS


def get_registered_name(obj) -> str:
    """The name `obj` (a class or function) is saved under: its registered "package>name", or
    else its own name, as Keras' `get_registered_name`."""
    return registered_name(obj) or obj.__name__


def registered_name(cls) -> str | None:
    """The name `cls` was registered under, or None for lamina's own and unregistered classes."""
    key = cls.__dict__.get("_lamina_registered_name")
    return key if key is not None and _CUSTOM_OBJECTS.get(key) is cls else None


def get_registered_object(name: str, custom_objects: dict | None = None, module_objects=None):
    """The class or function saved under `name` (a registered "package>name", a custom object's
    key, or one of `module_objects`), as Keras' `get_registered_object`; None if none is."""
    from lamina.saving.config import _custom_objects

    for objects in (custom_objects, _custom_objects.get(), module_objects):
        if objects and name in objects:
            return objects[name]
    if name in _CUSTOM_OBJECTS:
        return _CUSTOM_OBJECTS[name]
    return _lamina_only_layers().get(name)


def _lamina_only_layers() -> dict[str, type]:
    """lamina's layers that Keras lacks, by the "lamina>Name" they are saved under for Keras."""
    from lamina.saving import keras_layout

    builtin = builtin_layers()
    return {keras_layout.lamina_only_name(name): builtin[name] for name in keras_layout.LAMINA_ONLY}


def _public_subclasses(base) -> dict[str, type]:
    found, stack = {}, [base]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("lamina.") and not sub.__name__.startswith("_"):
                found.setdefault(sub.__name__, sub)
    return found


def builtin_layers() -> dict[str, type]:
    """lamina's own layer and model classes by class name (Keras' "Functional" is lamina.Model)."""
    import lamina.layers  # noqa: F401  (imports every layer family, so that all are subclasses)
    from lamina.layers.base import Layer
    from lamina.models import Model

    classes = _public_subclasses(Layer)
    classes["Functional"] = Model
    return classes


def is_builtin(cls) -> bool:
    return builtin_layers().get(cls.__name__) is cls


def resolve_class(class_name, registered, custom_objects=None, where="the config"):
    """The class a config entry names, from custom objects, the registry or lamina's own layers."""
    if not isinstance(class_name, str) or (registered is not None and not isinstance(registered, str)):
        raise SavingError(
            f"{where}: a layer entry has class_name={class_name!r} and registered_name="
            f"{registered!r}; both must be strings."
        )
    for key in (registered, class_name):
        if key is not None:
            cls = get_registered_object(key, custom_objects)
            if cls is not None:
                return cls
    if registered is None or registered == class_name:
        cls = builtin_layers().get(class_name)
        if cls is not None:
            return cls
    shown = registered or class_name
    raise SavingError(
        f"{where} names the class '{shown}', which lamina does not know. If it is your own layer "
        "or model, decorate its class with @lamina.saving.register_serializable(package=...) "
        f"before loading, or pass custom_objects={{'{shown}': YourClass}} to load_model. Classes "
        "are never imported from the file."
    )
