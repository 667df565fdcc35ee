"""Keras export: Keras 3 `.keras` archives and `.weights.h5` files that Keras 3 itself opens.

lamina's configs already have Keras 3's shape (class names, arguments, `inbound_nodes` with
`__keras_tensor__` references), so writing one for Keras adds what Keras' deserializer needs to
find each class ("module", "registered_name"), spells InputLayer's shape as Keras does, and drops
the few arguments Keras' class lacks when they are at their neutral value. The weights go to
`model.weights.h5` in Keras' tree (keras_layout.py), each layer's arrays from its `get_weights()`,
which already speaks Keras' order and shapes.

Op nodes (`x + y`, `ops.mean(...)`) are written as Keras' Operation nodes (keras_ops.py).
Layers Keras does not have (keras_layout.LAMINA_ONLY, an op Keras lacks among them) are written
under the registered name "lamina>ClassName", as Keras' `register_keras_serializable(package=
"lamina")` would name them: lamina reloads them; Keras refuses the file with "Could not locate
class 'ClassName'" unless a Keras implementation is registered under that name. Optimizer state is
not carried over: Keras starts from a fresh optimizer with the saved learning rate.
"""

from __future__ import annotations

import datetime
import inspect
import io
import warnings

import numpy as np

from lamina import initializers, regularizers
from lamina.saving import archive, compile_state, config, keras_layout, keras_ops, registry
from lamina.saving.errors import SavingError

# The Keras 3 release whose layout these files follow (Keras reads its older layouts).
KERAS_VERSION = "3.0.0"
_MODULE_OF = {"Functional": "keras.src.models.functional", "Sequential": "keras", "Model": "keras"}
# Arguments lamina's class takes and Keras' does not, with the value at which leaving them out
# changes nothing.
_KERAS_LACKS = {
    "Cropping1D": {"data_format": "channels_last"},
    "UpSampling1D": {"data_format": "channels_last"},
    "SpatialDropout1D": {"data_format": "channels_last", "noise_shape": None, "trainable": True},
    "SpatialDropout2D": {"noise_shape": None, "trainable": True},
    "SpatialDropout3D": {"noise_shape": None, "trainable": True},
}


# ----------------------------------------------------------------------------- writers
def save_keras_archive(model, path, include_optimizer=True) -> None:
    """Write `model` as a Keras 3 .keras archive at `path`, atomically."""
    entry = keras_entry(config.serialize(model), f"model '{model.name}'")
    _warn_lamina_only(entry, path)
    settings = compile_state.compile_config(model) if include_optimizer else None
    if settings is not None:
        entry["compile_config"] = _keras_compile_config(settings)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = h5_bytes(model, optimizer=model.optimizer if settings is not None else None)
    archive.write_archive(path, {"metadata.json": archive.dumps(metadata),
                                 "config.json": archive.dumps(entry), "model.weights.h5": weights})


def _warn_lamina_only(entry, path) -> None:
    """Say, when saving, which layers Keras will not find (Keras' own error names only one)."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if value.get("module") == "lamina.layers":
                found.add(f"ops.{value['config']['function']}" if value["class_name"] == "OpLayer"
                          else value["registered_name"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(entry)
    if found:
        warnings.warn(
            f"'{path}' holds layers or ops Keras 3 does not have ({', '.join(sorted(found))}): lamina "
            "loads it, but Keras refuses it ('Could not locate class ...') unless a Keras class is "
            "registered under each of these names. See docs/saving.md.", stacklevel=4)


def save_keras_weights(model, path) -> None:
    """Write the model's weights as a Keras 3 .weights.h5 file at `path`, atomically."""
    data = h5_bytes(model)
    archive.atomic_write(path, lambda f: f.write(data))


def h5_bytes(model, optimizer=None) -> bytes:
    """The model's arrays as an HDF5 file in Keras 3's layout."""
    from lamina.saving import weights
    from lamina.saving.keras_import import _h5py

    buffer = io.BytesIO()
    h5py = _h5py()
    with h5py.File(buffer, "w") as root:
        _write_model(root, model)
        if optimizer is not None:
            _write_fresh_optimizer(root, optimizer)
        datasets = {}
        root.visititems(lambda name, obj: datasets.__setitem__(name, obj)
                        if isinstance(obj, h5py.Dataset) else None)
        # fixed-length bytes, stored in the attribute itself: reading a variable-length string
        # goes through HDF5's global heap, whose reader can loop forever on a damaged file
        root.attrs[keras_layout.DIGEST_ATTRIBUTE] = np.bytes_(weights.digest(datasets))
    return buffer.getvalue()


def _write_model(group, model) -> None:
    from lamina.models.model import Model

    group.create_group("vars").attrs["name"] = model.name
    layers = group.create_group("layers")
    for layer, key in keras_layout.layer_groups(model):
        sub = layers.create_group(key)
        if isinstance(layer, Model):
            _write_model(sub, layer)
        else:
            _write_layer(sub, layer)


def _write_layer(group, layer) -> None:
    group.create_group("vars").attrs["name"] = layer.name
    arrays = layer.get_weights()
    start = 0
    for path, count in keras_layout.weight_groups(layer, len(arrays)):
        target = group.require_group(f"{path}/vars" if path else "vars")
        for i, array in enumerate(arrays[start:start + count]):
            target.create_dataset(str(i), data=np.asarray(array))
        start += count


def _write_fresh_optimizer(root, optimizer) -> None:
    """An optimizer that has not taken a step, as Keras writes one: its iteration count and, unless
    a schedule gives it, its learning rate. Keras then builds its own slots, as after compile()."""
    group = root.create_group("optimizer").create_group("vars")
    group.attrs["name"] = optimizer.name
    group.create_dataset("0", data=np.asarray(0, dtype=np.int64))
    if optimizer._schedule is None:
        group.create_dataset("1", data=np.asarray(optimizer.learning_rate, np.float32))


# ----------------------------------------------------------------------------- config
def keras_entry(entry: dict, where: str) -> dict:
    """A lamina entry (config.serialize) as Keras 3 writes it in config.json."""
    class_name, registered = entry["class_name"], entry.get("registered_name")
    if keras_ops.has_keras_op(entry):
        return keras_ops.to_keras(entry, where)
    if registered is not None:
        cls = registry.get_registered_object(registered)
        return {"module": getattr(cls, "__module__", None), **entry}
    if class_name in keras_layout.LAMINA_ONLY:
        return {"module": "lamina.layers", **entry,
                "registered_name": keras_layout.lamina_only_name(class_name)}
    where = f"{where}, layer '{entry['config'].get('name')}' ({class_name})"
    out = {"module": _MODULE_OF.get(class_name, "keras.layers"), "class_name": class_name,
           "config": _keras_config(class_name, entry["config"], where),
           "registered_name": "Functional" if class_name == "Functional" else None}
    for key in ("build_config", "name", "inbound_nodes"):
        if key in entry:
            out[key] = entry[key]
    shapes = _call_shapes(class_name, entry.get("inbound_nodes"))
    if len(shapes) > 1:
        out["build_config"] = {"shapes_dict": shapes}
    return out


def _call_shapes(class_name, nodes) -> dict:
    """Keras builds a layer called on several tensors (MultiHeadAttention's query and value) from
    a build_config {"shapes_dict": {"<call argument>_shape": shape}}, taken from its first call:
    the shapes of the tensor arguments of that call, by the names of the layer's call()."""
    cls = registry.builtin_layers().get(class_name)
    if cls is None or not nodes:
        return {}
    try:
        bound = inspect.signature(cls.call).bind(None, *nodes[0].get("args", []),
                                                 **nodes[0].get("kwargs", {}))
    except TypeError:
        return {}
    return {f"{name}_shape": value["config"]["shape"] for name, value in bound.arguments.items()
            if name != "mask" and isinstance(value, dict)
            and value.get("class_name") == config.TENSOR_MARKER}


def _keras_config(class_name, config_: dict, where) -> dict:
    if class_name == "InputLayer":
        return {"batch_shape": [config_.get("batch_size"), *config_["shape"]],
                "dtype": config_.get("dtype") or "float32", "sparse": False,
                "name": config_.get("name")}
    out = {}
    neutral = _KERAS_LACKS.get(class_name, {})
    for key, value in config_.items():
        if key in neutral:
            if value != neutral[key]:
                raise SavingError(
                    f"Cannot save {where} for Keras: {key}={value!r} has no Keras counterpart. "
                    "Save it as .lamina instead.")
            continue
        out[key] = _keras_value(value, where) if key != "layers" else \
            [keras_entry(e, where) for e in value]
    return out


def _keras_value(value, where):
    """Nested objects: wrapped layers translated, initializers and regularizers with Keras'
    module; plain values as they are."""
    if isinstance(value, list):
        return [_keras_value(v, where) for v in value]
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    class_name = value["class_name"]
    if class_name in registry.builtin_layers() or value.get("registered_name"):
        return keras_entry(value, where)
    for module, keras_module in ((initializers, "keras.initializers"),
                                 (regularizers, "keras.regularizers")):
        if class_name in getattr(module, "__all__", ()):
            return {"module": keras_module, "class_name": class_name, "config": value["config"],
                    "registered_name": None}
    return value


def _keras_compile_config(settings: dict) -> dict:
    """lamina's compile settings (compile_state.compile_config) as Keras' compile_config."""
    def objects(value, module):
        if isinstance(value, list):
            return [objects(v, module) for v in value]
        if isinstance(value, dict) and "class_name" in value:
            return {"module": module, **value}
        if isinstance(value, dict):
            return {k: objects(v, module) for k, v in value.items()}
        return value

    optimizer = settings.get("optimizer")
    if isinstance(optimizer, dict):
        optimizer = {"module": "keras.optimizers", "class_name": optimizer["class_name"],
                     "config": optimizer["config"], "registered_name": None}
    return {"optimizer": optimizer, "loss": objects(settings.get("loss"), "keras.losses"),
            "loss_weights": settings.get("loss_weights"),
            "metrics": objects(settings.get("metrics"), "keras.metrics"),
            "weighted_metrics": objects(settings.get("weighted_metrics"), "keras.metrics"),
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
