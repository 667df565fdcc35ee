"""Keras import: Keras 3 `.keras` archives, `.weights.h5` files and legacy Keras `.h5` models, read
with json, zipfile and h5py only (neither Keras nor TensorFlow is needed).

lamina mirrors Keras 3's class names, arguments and weight order, so importing is mostly the
identity: the Keras config is translated entry by entry (Keras-only arguments that are unset are
dropped; one that is set, and changes what the layer computes, is an error naming it), the model
is rebuilt by lamina's own deserializer, and each layer receives Keras' arrays through its
`set_weights`, which speaks Keras' order and shapes (conv kernels, LSTM/GRU gate blocks, BN
statistics). Keras' optimizer variables are not imported: a compiled model starts with a fresh
optimizer.

Where Keras 3 keeps a layer's arrays in `model.weights.h5` is described in keras_layout.py, which
the writer (keras_export.py) shares.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import warnings

import numpy as np

from lamina import initializers, regularizers
from lamina.saving import config as config_mod
from lamina.saving import keras_layout, keras_ops, registry
from lamina.saving.errors import SavingError
from lamina.saving.keras_layout import MODEL_CLASSES as _MODEL_CLASSES

# Arguments Keras records that do not change what a layer computes, whatever their value.
_INERT_ARGUMENTS = {"implementation", "unroll", "seed", "renorm_momentum", "autocast", "ema_momentum",
                    "input_dtype", "synchronized", "time_major"}


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise SavingError(
            "Keras' file formats (.keras, .weights.h5, .h5) need h5py, to read and to write them: "
            "pip install h5py (or lamina[keras-import])."
        ) from e
    return h5py


# ----------------------------------------------------------------------------- config translation
def translate(entry, where: str) -> dict:
    """A Keras layer or model entry as a lamina entry that `config.deserialize` rebuilds.
    Keras' `mask=` and `training=` call arguments are dropped (see _translate_node)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise SavingError(f"{where}: expected a Keras layer entry, found {config_mod._short(entry)}.")
    class_name = entry.get("class_name")
    name = entry["config"].get("name", entry.get("name"))
    where = f"{where}, Keras layer '{name}' ({class_name})"
    if class_name == "Lambda":
        raise SavingError(
            f"{where} is a Lambda layer: Keras stores its Python function as bytecode, and lamina "
            "never runs code from a file. Rebuild that part of the model in lamina (a Layer "
            "subclass), then load the other weights with load_weights."
        )
    registered = entry.get("registered_name")
    custom = registered is not None and registered != class_name
    if custom or class_name not in registry.builtin_layers():
        cls = registry.get_registered_object(registered or class_name, config_mod._custom_objects.get())
        if cls is None:
            kind = f"a custom object ('{registered}')" if custom else \
                "a Keras class lamina does not have"
            raise SavingError(
                f"{where} is {kind}. Register a lamina counterpart with "
                "@lamina.saving.register_serializable() (or pass custom_objects) to load it."
            )
        return {**entry, "module": None}
    if class_name in _MODEL_CLASSES:
        return _translate_model(entry, where)
    cls = registry.builtin_layers()[class_name]
    translated = {"class_name": class_name, "registered_name": None,
                  "config": _translate_arguments(cls, entry["config"], where)}
    if isinstance(entry.get("build_config"), dict):
        translated["build_config"] = entry["build_config"]
    return translated


def _translate_model(entry, where) -> dict:
    config = dict(entry["config"])
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise SavingError(f"{where}: a model config needs a 'layers' list.")
    out = {"name": config.get("name"), "trainable": config.get("trainable", True)}
    if entry["class_name"] == "Sequential":
        out["layers"] = [translate(e, where) for e in layers]
        if config.get("build_input_shape") is not None:
            out["build_input_shape"] = config["build_input_shape"]
        return {"class_name": "Sequential", "registered_name": None, "config": out}
    layers = [e for e in layers if isinstance(e, dict)]
    nodes = {id(e): [_translate_node(n, where, operation=_is_operation(e))
                     for n in e.get("inbound_nodes") or []] for e in layers}
    # Keras 3 records the mask computations of Masking/Embedding as graph operations feeding
    # `mask=` arguments; lamina's masks travel with the tensors, so those operations go. The
    # operations the outputs need become lamina op nodes (keras_ops.py).
    operations = {_entry_name(e): e for e in layers if _is_operation(e)}
    needed = _referenced([n for e in layers if not _is_operation(e) for n in nodes[id(e)]]
                         + [config.get("output_layers")])
    frontier = needed & set(operations)
    while frontier:
        found = _referenced([nodes[id(operations[name])] for name in frontier])
        frontier = (found - needed) & set(operations)
        needed |= found
    out["layers"] = []
    for e in layers:
        name = _entry_name(e)
        if _is_operation(e):
            if name in needed:
                out["layers"].append(keras_ops.from_keras(e, nodes[id(e)], where))
            continue
        t = translate(e, where)
        t["name"] = name
        t["inbound_nodes"] = nodes[id(e)]
        out["layers"].append(t)
    out["input_layers"] = _legacy_endpoints(config.get("input_layers"))
    out["output_layers"] = _legacy_endpoints(config.get("output_layers"))
    return {"class_name": "Functional", "registered_name": None, "config": out}


def _entry_name(entry):
    config = entry.get("config")
    return entry.get("name", config.get("name") if isinstance(config, dict) else None)


def _is_operation(entry) -> bool:
    """A Keras op (keras.ops.*) recorded in a functional graph: not a layer, holds no weights.
    Legacy .h5 configs name no module; there an op is a class lamina has no layer of, or, for
    names ops share with layers (Concatenate, Add, ...), a config without the `dtype` that every
    layer's has."""
    module = entry.get("module")
    if module is not None:
        return str(module).startswith(("keras.src.ops", "keras.ops"))
    class_name, config = entry.get("class_name"), entry.get("config")
    if class_name in _MODEL_CLASSES or class_name == "InputLayer":
        return False
    return class_name not in registry.builtin_layers() or (
        isinstance(config, dict) and "dtype" not in config)


def _referenced(structures) -> set[str]:
    """Names of the layers whose outputs the given call records or endpoints use."""
    names, stack = set(), list(structures)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            history = (value.get("config") or {}).get("keras_history") \
                if value.get("class_name") == config_mod.TENSOR_MARKER else None
            if isinstance(history, list) and history:
                names.add(history[0])
            else:
                stack += list(value.values())
        elif isinstance(value, list):
            if len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], int):
                names.add(value[0])
            else:
                stack += value
    return names


def _translate_node(node, where, operation=False) -> dict:
    """One call of a layer. Keras' recorded `training` flags are dropped: Keras replaces them by
    the mode of the model call (fit: training, predict: inference), and so does lamina for a
    call without one. Masks too: lamina's travel with the tensors, computed by the same layers;
    but an operation's `mask=` is an argument of the op (ops.dot_product_attention), kept."""
    if isinstance(node, list):  # tf.keras 2: [[layer, node, tensor, kwargs], ...] per input
        refs = [_tensor_ref(item[:3]) for item in node]
        kwargs = next((item[3] for item in node if len(item) > 3 and isinstance(item[3], dict)), {})
        node = {"args": [refs[0] if len(refs) == 1 else refs], "kwargs": kwargs}
    if not isinstance(node, dict):
        raise SavingError(f"{where}: a call record must be a dict, found {config_mod._short(node)}.")
    dropped = ("training",) if operation else ("training", "mask")
    kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k not in dropped}
    return {"args": node.get("args", []), "kwargs": kwargs}


def _tensor_ref(history):
    return {"class_name": config_mod.TENSOR_MARKER, "config": {"keras_history": list(history)}}


def _legacy_endpoints(value):
    """input_layers / output_layers: a [name, node, tensor] triple or a structure of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        return [_legacy_endpoints(value[0])]
    return value


def _accepted_arguments(cls) -> set[str]:
    """The keyword arguments `cls(...)` takes, following **kwargs up to Layer's."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def _translate_arguments(cls, config: dict, where: str) -> dict:
    if cls.__name__ == "InputLayer":
        return _input_arguments(config, where)
    accepted = _accepted_arguments(cls)
    out = {}
    for key, value in config.items():
        value = _translate_value(value, f"{where}, argument '{key}'")
        if key in accepted:
            out[key] = value
        elif not (key in _INERT_ARGUMENTS or value in (None, False, [], {})):
            raise SavingError(
                f"{where} sets {key}={config_mod._short(value)}, which lamina's {cls.__name__} does "
                "not support; importing it without would change what the layer computes."
            )
    if out.get("dtype") == "float32":
        del out["dtype"]
    return out


def _input_arguments(config, where) -> dict:
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, list) or not shape:
        raise SavingError(f"{where}: an InputLayer needs a 'batch_shape'.")
    for flag in ("sparse", "ragged"):
        if config.get(flag):
            raise SavingError(f"{where} takes {flag} inputs, which lamina does not support.")
    dtype = _translate_value(config.get("dtype"), where)
    return {"shape": shape[1:], "batch_size": shape[0], "name": config.get("name"),
            **({"dtype": dtype} if dtype is not None else {})}


def _translate_value(value, where):
    """Nested Keras objects: dtype policies to their name, activations to theirs, initializers
    and regularizers to lamina's {class_name, config}, wrapped layers translated."""
    if isinstance(value, list):
        return [_translate_value(v, where) for v in value]
    if not (isinstance(value, dict) and "class_name" in value):
        return value
    class_name, inner = value.get("class_name"), value.get("config")
    registered = value.get("registered_name")
    if class_name in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
        return inner.get("name") if isinstance(inner, dict) else inner
    if class_name == "function" or registered == "function":
        if not (registered in (None, "function") and isinstance(inner, str)):
            raise SavingError(f"{where} is the custom function '{registered}', which lamina does not have.")
        return inner
    if class_name in registry.builtin_layers() or class_name == "Lambda":
        return translate(value, where)
    for module in (initializers, regularizers):
        cls = getattr(module, class_name, None) if class_name in getattr(module, "__all__", ()) else None
        if cls is not None and isinstance(inner, dict):
            return {"class_name": class_name, "config": _translate_arguments(cls, inner, where)}
    raise SavingError(f"{where} is a Keras {class_name}, which lamina does not have.")


# ----------------------------------------------------------------------------- Keras 3 archives
def load_keras_archive(zf, compile=True):
    """A lamina model from an opened Keras 3 .keras archive (config.json + model.weights.h5)."""
    model, keras_entry = _model_from_archive(zf)
    with open_h5(zf.read("model.weights.h5"), f"'{zf.path}', model.weights.h5") as root:
        _assign_tree(model, keras_entry, root, f"'{zf.path}'")
    if compile:
        _compile(model, keras_entry.get("compile_config"), zf.path)
    return model


def _model_from_archive(zf):
    keras_entry = zf.read_json("config.json")
    where = f"'{zf.path}'"
    entry = translate(keras_entry, where)
    # lamina may keep a few more buffers than Keras' arrays; twice the file is a generous cap.
    config_mod.check_cost(entry, 2 * zf.size("model.weights.h5") + 2**20, where)
    return config_mod.deserialize(entry, where=f"{where}, config"), keras_entry


def load_archive_weights(model, zf) -> None:
    """Weights of a .keras archive into an existing lamina model of the same architecture."""
    from lamina.saving import weights

    source = load_keras_archive(zf, compile=False)
    weights.assign(model, weights.model_tensors(source), f"'{zf.path}'")


@contextlib.contextmanager
def open_h5(source, where):
    """An HDF5 file (a path, or the bytes of the weights inside a .keras archive), opened for
    reading and checked whole before anything else reads from it (see check_h5)."""
    try:
        file = _h5py().File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(f"Cannot load {where}: it is not a readable HDF5 file "
                          f"({type(e).__name__}: {e}).") from e
    try:
        check_h5(file, where)
        yield file
    finally:
        file.close()


# deflate, the one compression filter h5py writes besides lzf, expands data at most this much
_MAX_FILTER_RATIO = 1032


def check_h5(root, where) -> None:
    """Refuse what an HDF5 file may declare beyond what it holds, before any array is read: links
    (a soft or external link points elsewhere, possibly at another file), external or virtual
    datasets (their data lives in other files), and datasets whose declared size exceeds their
    stored bytes (an unwritten dataset reads as fill values: zeros from nothing). Then, when
    lamina wrote the file, check its digest."""
    h5py = _h5py()
    links = {}
    try:  # (an exception raised inside h5py's visit would reach here as a SystemError)
        root.visititems_links(lambda name, link: links.__setitem__(name, link))
        datasets = {name: root[name] for name, link in links.items()
                    if isinstance(link, h5py.HardLink) and isinstance(root[name], h5py.Dataset)}
        recorded = root.attrs.get(keras_layout.DIGEST_ATTRIBUTE)
    except Exception as e:  # a damaged object header, with h5py's own error types
        raise SavingError(f"Cannot load {where}: its HDF5 structure is damaged "
                          f"({type(e).__name__}: {e}).") from e
    for name, link in links.items():
        if not isinstance(link, h5py.HardLink):
            raise SavingError(f"Cannot load {where}: '{name}' is a {type(link).__name__}; "
                              "lamina reads only the file's own groups and arrays.")
    for name, ds in datasets.items():
        _checked_dataset(ds, f"Cannot load {where}: array '{name}'")
    if recorded is not None:
        from lamina.saving import weights

        recorded = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
        if recorded != weights.digest(datasets):
            raise SavingError(
                f"Cannot load {where}: its arrays do not match the digest lamina wrote with them: "
                "the file was damaged (or edited) after it was written."
            )


def _checked_dataset(ds, where):
    if ds.external or ds.is_virtual:
        raise SavingError(f"{where} keeps its data in another file, which lamina does not read.")
    if ds.dtype.kind not in "fiub":
        raise SavingError(f"{where} holds {ds.dtype} values, not numbers.")
    declared = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
    stored = ds.id.get_storage_size()
    filtered = ds.id.get_create_plist().get_nfilters() > 0
    if declared > (stored * _MAX_FILTER_RATIO + 4096 if filtered else stored):
        raise SavingError(f"{where} declares shape {ds.shape} ({declared} bytes) but the file "
                          f"stores only {stored} bytes of it; the file is damaged or hostile.")
    return ds


def _keras_paths(keras_entry) -> list[tuple[dict, str]]:
    """(Keras layer entry, its group name under "layers/") for a model's layers, in Keras' order."""
    sequential = keras_entry.get("class_name") == "Sequential"
    # a Sequential's `layers` leaves its InputLayer out, and operations (lamina's OpLayer for an
    # op Keras lacks included) are no layers
    entries = [e for e in keras_entry["config"]["layers"]
               if not (sequential and e.get("class_name") == "InputLayer" or _is_operation(e)
                       or e.get("class_name") == "OpLayer")]
    return list(zip(entries, keras_layout.numbered(e.get("class_name", "") for e in entries)))


def _assign_tree(model, keras_entry, group, where) -> None:
    from lamina.models.sequential import Sequential

    if not isinstance(keras_entry["config"].get("layers"), list):  # a subclassed model
        for layer, datasets in _plan_by_structure(model, group, where):
            if datasets:
                layer.set_weights(_read(datasets, where))
        return
    layers_group = group.get("layers") if "layers" in group else {}
    targets = model.layers if isinstance(model, Sequential) else None
    for i, (entry, key) in enumerate(_keras_paths(keras_entry)):
        layer = targets[i] if targets is not None else model.get_layer(
            entry.get("name", entry["config"].get("name")))
        sub = layers_group.get(key) if key in layers_group else None
        if entry.get("class_name") in _MODEL_CLASSES:
            _assign_tree(layer, entry, sub if sub is not None else {}, where)
            continue
        arrays = _collect(sub) if sub is not None else []
        _set_weights(layer, arrays, f"{where}, layer '{layer.name}' (h5 group 'layers/{key}')")


def _collect(group) -> list:
    """A layer's h5 datasets in Keras' get_weights order: its own vars, then its sublayers'."""
    out = []
    if "vars" in group:
        own = group["vars"]
        out += [own[k] for k in sorted(own, key=_numeric)]
    children = [k for k in group if k != "vars" and not k.startswith("seed_generator")
                and hasattr(group[k], "keys")]
    for k in sorted(children, key=lambda k: (keras_layout.CHILD_ORDER.get(k, 2), k)):
        out += _collect(group[k])
    return out


def _numeric(key: str):
    return (0, int(key)) if key.isdigit() else (1, key)


def _set_weights(layer, datasets, where) -> None:
    """Check the count and shapes before reading any array, then set them."""
    _check_weights(layer, datasets, where)
    if datasets:
        layer.set_weights(_read(datasets, where))


def _read(datasets, where) -> list:
    """The arrays of checked datasets, refused if not finite (unless the load allows it)."""
    from lamina.saving import weights

    arrays = {ds.name: np.asarray(ds[()]) for ds in datasets}
    weights.check_finite(arrays, where)
    return list(arrays.values())


def _check_weights(layer, datasets, where) -> None:
    expected = [w.shape for w in layer.get_weights()]
    if len(datasets) != len(expected):
        raise SavingError(f"{where}: the file holds {len(datasets)} arrays, but lamina's "
                          f"{type(layer).__name__} has {len(expected)} weights {expected}.")
    for i, (ds, shape) in enumerate(zip(datasets, expected)):
        if tuple(getattr(ds, "shape", ())) != tuple(shape) or getattr(ds, "dtype", np.dtype("O")).kind \
                not in "fiub":
            raise SavingError(
                f"{where}: array {i} is {getattr(ds, 'shape', '?')} {getattr(ds, 'dtype', '?')}, "
                f"but lamina's {type(layer).__name__} expects shape {tuple(shape)} (numbers)."
            )


def load_h5_weights(model, path) -> None:
    """A Keras .h5 file into an existing model: a legacy full model or a Keras 3 .weights.h5."""
    from lamina.saving import weights

    with open_h5(path, f"'{path}'") as f:
        if "model_config" in f.attrs:
            source = load_legacy_h5(path, compile=False)
            weights.assign(model, weights.model_tensors(source), f"'{path}'")
            return
        if "layers" not in f:
            raise SavingError(f"Cannot load weights from '{path}': it is an HDF5 file, but not a "
                              "Keras weights file.")
        # All or nothing: every layer's arrays are checked and read before any is assigned.
        plan = _plan_by_structure(model, f, f"'{path}'")
        arrays = [(layer, _read(datasets, f"'{path}'")) for layer, datasets in plan]
    with weights.restored_on_error(model):
        for layer, values in arrays:
            if values:
                layer.set_weights(values)


def _plan_by_structure(model, group, where) -> list:
    """(layer, its checked h5 datasets) for a Keras 3 .weights.h5 read into a lamina model;
    group names from the model's own layers."""
    from lamina.models.model import Model

    plan = []
    for layer, key in keras_layout.layer_groups(model):
        sub = keras_layout.layer_group(group, model, layer, key)
        if isinstance(layer, Model):
            plan += _plan_by_structure(layer, sub if sub is not None else {"layers": {}}, where)
        else:
            datasets = _collect(sub) if sub is not None else []
            _check_weights(layer, datasets, f"{where}, layer '{layer.name}' (h5 group 'layers/{key}')")
            plan.append((layer, datasets))
    return plan


# ----------------------------------------------------------------------------- legacy .h5
def load_legacy_h5(path, compile=True):
    """A lamina model from a legacy full-model Keras .h5 file (tf.keras 2, or Keras 3's .h5)."""
    where = f"'{path}'"
    with open_h5(path, where) as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise SavingError(
                f"Cannot load {where}: the HDF5 file holds no model config (it may be weights "
                "only: build the model in lamina and call model.load_weights)."
            )
        try:
            keras_entry = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
        except (ValueError, RecursionError) as e:
            raise SavingError(f"Cannot load {where}: its model config is not JSON ({e}).") from e
        entry = translate(keras_entry, where)
        config_mod.check_cost(entry, os.path.getsize(path), where)
        model = config_mod.deserialize(entry, where=f"{where}, config")
        weights_group = f["model_weights"] if "model_weights" in f else f
        for layer in model.layers:
            if layer.name not in weights_group:
                if layer.get_weights():
                    raise SavingError(f"Cannot load {where}: no weights for layer '{layer.name}'.")
                continue
            group = weights_group[layer.name]
            names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                     for n in group.attrs.get("weight_names", [])]
            missing = [n for n in names if n not in group]
            if missing:
                raise SavingError(f"Cannot load {where}: layer '{layer.name}' lists weights "
                                  f"{missing} that the file does not hold.")
            _set_weights(layer, [group[n] for n in names], f"{where}, layer '{layer.name}'")
        training = f.attrs.get("training_config")
    if compile and training is not None:
        text = training.decode("utf-8") if isinstance(training, bytes) else str(training)
        try:
            settings = json.loads(text)
        except ValueError:
            settings = None
        _compile(model, _legacy_compile_config(settings), path)
    return model


def _legacy_compile_config(settings):
    if not isinstance(settings, dict):
        return None
    return {"optimizer": settings.get("optimizer_config"), "loss": settings.get("loss"),
            "loss_weights": settings.get("loss_weights"), "metrics": settings.get("metrics"),
            "weighted_metrics": settings.get("weighted_metrics")}


def _compile(model, settings, path) -> None:
    """compile() with Keras' settings where lamina has them all; otherwise leave the model
    uncompiled and say why."""
    if not isinstance(settings, dict):
        return
    from lamina import optimizers

    try:
        optimizer = settings.get("optimizer")
        if isinstance(optimizer, dict):
            cls = getattr(optimizers, str(optimizer.get("class_name")), None)
            if not (isinstance(cls, type) and issubclass(cls, optimizers.Optimizer)):
                raise SavingError(f"optimizer {optimizer.get('class_name')!r} is not in lamina")
            optimizer = cls(**_translate_arguments(cls, optimizer.get("config") or {}, "optimizer"))
        model.compile(optimizer=optimizer or "rmsprop", loss=settings.get("loss"),
                      loss_weights=settings.get("loss_weights"), metrics=settings.get("metrics"),
                      weighted_metrics=settings.get("weighted_metrics"))
    except Exception as e:
        warnings.warn(f"'{path}': the model is loaded uncompiled, since its Keras compile settings "
                      f"could not be reproduced ({e}). Call compile() yourself.", stacklevel=3)
