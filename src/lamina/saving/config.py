"""Layer and model configs: `serialize` a layer to plain JSON data, `deserialize` it back.

A serialized layer is `{"class_name", "registered_name", "config", "build_config"}` — the shape of
Keras 3's own configs, so a Keras archive's config needs only light translation to be read here.
A functional model's config lists its layers, each with its calls ("inbound_nodes") whose tensor
arguments point at an earlier call's output by `[layer_name, node_index, tensor_index]`; a
Sequential's lists its layers in order. Rebuilding replays those calls on Input tensors.
"""

from __future__ import annotations

import contextvars
import json
import math
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lamina.layers.base import Layer, state_updates_disabled
from lamina.layers.input_layer import InputLayer
from lamina.layers.symbolic import SymbolicTensor
from lamina.saving import registry
from lamina.saving.errors import SavingError
from lamina.utils import naming, tree

TENSOR_MARKER = "__keras_tensor__"  # Keras 3's name for a symbolic tensor in a node's arguments
_NOT_READY = object()  # a node argument whose producing call has not been replayed yet

_custom_objects: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "lamina_custom_objects", default=None)


class CustomObjectScope:
    """Within this block, configs may also name the classes and functions in the given dicts
    (name -> object), as Keras' `CustomObjectScope` / `custom_object_scope`.

    Example:
        >>> with lamina.saving.custom_object_scope({"Scale": Scale}):
        ...     model = lamina.load_model("scaled.keras")
    """

    def __init__(self, *custom_objects):
        for objects in custom_objects:
            if objects is not None and not isinstance(objects, dict):
                raise TypeError(f"custom_object_scope takes dicts of name -> class or function. "
                                f"Received: {objects!r:.80}")
        self.custom_objects = {k: v for objects in custom_objects if objects for k, v in objects.items()}
        self._tokens = []

    def __enter__(self):
        merged = {**(_custom_objects.get() or {}), **self.custom_objects}
        self._tokens.append(_custom_objects.set(merged))
        return self

    def __exit__(self, *exc):
        _custom_objects.reset(self._tokens.pop())


custom_object_scope = CustomObjectScope


# ----------------------------------------------------------------------------- serialize
def serialize(layer: Layer) -> dict:
    """The JSON-ready description of a layer (a model included) from which `deserialize` rebuilds it."""
    cls = type(layer)
    _check_saveable(layer)
    registered = registry.registered_name(cls)
    class_name = "Functional" if getattr(layer, "_graph", False) and registry.is_builtin(cls) \
        else cls.__name__
    entry = {"class_name": class_name, "registered_name": registered,
             "config": _jsonable(layer.get_config(), f"{cls.__name__} '{layer.name}' config")}
    shape = layer._build_input_shape
    if shape is not None and not getattr(layer, "_graph", False) and "layers" not in entry["config"]:
        entry["build_config"] = {"input_shape": _unbatched(shape)}
    return entry


def _check_saveable(layer) -> None:
    from lamina.layers.core import Lambda
    from lamina.layers.torch_wrapper import TorchModuleWrapper

    cls = type(layer)
    where = f"Layer '{layer.name}' ({cls.__name__})"
    if isinstance(layer, Lambda) and registry.is_builtin(cls):
        raise SavingError(
            f"{where} wraps a Python function, which lamina does not save: loading it would mean "
            "running code stored in the file. Write it as a Layer subclass decorated with "
            "@lamina.saving.register_serializable(), or save only the weights (save_weights)."
        )
    if isinstance(layer, TorchModuleWrapper) and registry.is_builtin(cls):
        raise SavingError(
            f"{where} wraps the torch module {type(layer.module).__name__}, whose construction "
            "lamina cannot describe in a config. Save only the weights (save_weights), or write "
            "it as a registered Layer subclass."
        )
    # A class neither built in nor registered is written under its name, as Keras does: loading
    # it then needs custom_objects (or the registration), and the load's error says so.


def _jsonable(value, where):
    """`value` with tuples as lists; a SavingError naming the first entry JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = next((k for k in value if not isinstance(k, str)), None)
        if bad is not None:
            raise SavingError(f"{where}: key {bad!r} is not a string, which a config cannot hold.")
        return {k: _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    raise SavingError(
        f"{where} holds {type(value).__name__} {value!r:.80}, which a config cannot hold (only "
        "numbers, strings, lists and dicts). Make get_config() return plain values."
    )


def _unbatched(shape):
    """A build shape with the batch axis as None (as Keras writes it)."""
    if tree.is_shape(shape):
        return [None, *list(shape)[1:]] if len(shape) else []
    if isinstance(shape, dict):
        return {k: _unbatched(v) for k, v in shape.items()}
    return [_unbatched(s) for s in shape]


def model_config(model) -> dict:
    """The config of a functional model or a Sequential (what their get_config returns)."""
    from lamina.models.sequential import Sequential

    if isinstance(model, Sequential):
        return _sequential_config(model)
    return _functional_config(model)


def _sequential_config(model) -> dict:
    entries = []
    if model._input_tensor is not None:
        entries.append(serialize(model._input_tensor.node.layer))
    entries += [serialize(layer) for layer in model.layers]
    config = {"name": model.name, "trainable": model.trainable, "layers": entries}
    if model._input_tensor is not None:
        config["build_input_shape"] = list(model._input_tensor.shape)
    return config


def _functional_config(model) -> dict:
    history = {}  # id(node) -> (layer name, index of this call among the layer's calls here)
    calls: dict[int, list] = {}
    for t in model._flat_inputs:
        history[id(t.node)] = (t.node.layer.name, 0)
    for node in model._nodes:
        calls.setdefault(id(node.layer), []).append(node)
        history[id(node)] = (node.layer.name, len(calls[id(node.layer)]) - 1)

    def ref(t: SymbolicTensor):
        name, index = history[id(t.node)]
        position = next(i for i, o in enumerate(tree.flatten(t.node.outputs)) if o is t)
        return [name, index, position]

    def encode(value, where):
        if isinstance(value, SymbolicTensor):
            return {"class_name": TENSOR_MARKER, "config": {
                "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
                "keras_history": ref(value)}}
        if isinstance(value, (list, tuple)):
            return [encode(v, where) for v in value]
        if isinstance(value, dict):
            return {k: encode(v, where) for k, v in value.items()}
        return _jsonable(value, where)

    entries = []
    for layer in model._graph_layers:
        entry = serialize(layer)
        where = f"a call of layer '{layer.name}' in model '{model.name}'"
        entry["name"] = layer.name
        entry["inbound_nodes"] = [
            {"args": encode(list(node.args), where), "kwargs": encode(node.kwargs, where)}
            for node in calls.get(id(layer), [])
        ]
        entries.append(entry)
    return {
        "name": model.name, "trainable": model.trainable, "layers": entries,
        "input_layers": tree.map_structure(ref, model._inputs_struct),
        "output_layers": tree.map_structure(ref, model._outputs_struct),
    }


# ----------------------------------------------------------------------------- deserialize
def deserialize(entry, build: bool = True, where: str = "the config"):
    """The layer or model an entry made by `serialize` describes, built if it was."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise SavingError(
            f"{where}: expected a layer entry {{'class_name': ..., 'config': {{...}}}}, found "
            f"{_short(entry)}."
        )
    cls = registry.resolve_class(entry.get("class_name"), entry.get("registered_name"),
                                 _custom_objects.get(), where)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise SavingError(f"{where}: '{entry.get('class_name')}' is not a lamina Layer or Model.")
    config = dict(entry["config"])
    name = config.get("name", entry.get("class_name"))
    try:
        layer = cls.from_config(config)
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(
            f"{where}: could not rebuild layer '{name}' ({cls.__name__}) from its config: "
            f"{type(e).__name__}: {e}"
        ) from e
    build_config = entry.get("build_config")
    if build and not layer.built and isinstance(build_config, dict):
        _build(layer, build_config.get("input_shape"), f"{where}, layer '{name}'")
    return layer


# The largest tensor that building a model from a file may create (a layer's weights or a build-time
# run on zeros), unless the file itself holds more: the shapes a config declares are bounded by the
# bytes it comes with, so a small file cannot make lamina allocate gigabytes.
TENSOR_FLOOR_BYTES = 16 * 2**20


class _TensorTooLarge(BaseException):
    """Raised inside the meta-device probe. A BaseException, so that no layer's `except
    Exception` (a fallback path, a dry run that may fail) takes it for an ordinary failure and
    carries on: the fuzzer found an LSTM's dry run doing so, and the real build then took 376 MB."""


class _TensorSizes(TorchDispatchMode):
    """Refuses any tensor above `limit` bytes as it is created (on the meta device: free)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree.flatten(out):
            if isinstance(t, torch.Tensor) and t.numel() * t.element_size() > self.limit:
                raise _TensorTooLarge(
                    f"{_building_layer()} would create a tensor of shape {tuple(t.shape)} "
                    f"({t.numel() * t.element_size()} bytes)")
        return out


def _building_layer() -> str:
    """The innermost layer being built or run (the one whose sizes are at fault)."""
    frame = sys._getframe(2)
    while frame is not None:
        owner = next((v for v in (frame.f_locals.get("self"), frame.f_locals.get("layer"))
                      if isinstance(v, Layer)), None)
        if owner is not None:
            return f"layer '{owner.name}' ({type(owner).__name__})"
        frame = frame.f_back
    return "a layer"


def check_cost(entry, available: int, where: str) -> None:
    """Refuse a config that would cost more memory than the file can justify, before any is
    spent: the model is first built on torch's "meta" device, which allocates nothing, and it
    must need at most `available` bytes of weights (what the file holds), and create no tensor
    (weight, or a run on zeros while building) above max(TENSOR_FLOOR_BYTES, available). This is
    the one place where every size a config declares (units, filters, kernel sizes, build and
    input shapes) meets the bytes the file holds. (A layer that cannot run on the meta device
    skips the check; the real build and the name/shape check of every tensor still follow.)"""
    counters = dict(naming._counters)
    try:
        with torch.device("meta"), _TensorSizes(max(TENSOR_FLOOR_BYTES, available)):
            probe = deserialize(entry, where=where)
        needed = sum(t.numel() * t.element_size() for t in probe.state_dict().values())
    except _TensorTooLarge as e:
        raise SavingError(
            f"Cannot load {where}: from the sizes in its config, {e}: far more than the "
            f"{available} bytes of weights the file holds justify. The file is corrupted or was "
            "tampered with."
        ) from None
    except Exception:
        return
    finally:
        naming._counters.clear()
        naming._counters.update(counters)
    if needed > available:
        raise SavingError(
            f"Cannot load {where}: its config describes a model with {needed} bytes of weights, "
            f"but the file holds only {available}; the file is corrupted or was tampered with."
        )


def _build(layer, input_shape, where) -> None:
    """Create a layer's weights for `input_shape`; a subclassed model is run once on zeros,
    since its sublayers only build on their first call."""
    from lamina.models.model import Model

    shape = _shape_structure(input_shape, where)
    try:
        if isinstance(layer, Model) and not layer._graph and type(layer).build is Layer.build:
            dummy = tree.map_shapes(lambda s: torch.zeros([1 if d is None else d for d in s]), shape)
            with torch.no_grad(), state_updates_disabled():
                layer(dummy, training=False)
        else:
            layer.build_from_shape(shape)
    except Exception as e:
        raise SavingError(f"{where}: could not be built for input shape {shape}: {e}") from e


def _shape_structure(value, where):
    if tree.is_shape(value):
        if not all(d is None or d >= 0 for d in value):
            raise SavingError(f"{where}: invalid shape {value}.")
        return tuple(value)
    if isinstance(value, dict) and value:
        return {k: _shape_structure(v, where) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [_shape_structure(v, where) for v in value]
    raise SavingError(f"{where}: expected a shape (list of ints or nulls), found {_short(value)}.")


def model_from_config(cls, config: dict, make_layer=None):
    """A model of class `cls` from its config: functional, Sequential or subclassed.
    `make_layer(entry)` gives the layer each entry stands for (default: a new one, unbuilt)."""
    from lamina.models.sequential import Sequential

    if not isinstance(config, dict):
        raise SavingError(f"The config of a {cls.__name__} must be a dict, found {_short(config)}.")
    make_layer = make_layer or _new_layer
    if issubclass(cls, Sequential):
        return _sequential_from_config(cls, config, make_layer)
    if "layers" in config and "input_layers" in config:
        return _functional_from_config(cls, config, make_layer)
    return cls(**config)


def _new_layer(entry, where):
    return deserialize(entry, build=False, where=where)


def _sequential_from_config(cls, config, make_layer):
    name = config.get("name")
    where = f"Sequential '{name}'"
    entries = _list_of(config, "layers", where)
    model = cls(name=name, trainable=config.get("trainable", True))
    for i, entry in enumerate(entries):
        layer = make_layer(entry, f"{where}, layer {i}")
        try:
            model.add(layer)
        except (ValueError, TypeError) as e:
            raise SavingError(f"{where}: could not add layer {i}: {e}") from e
    shape = config.get("build_input_shape")
    if shape is not None and not model.built:
        _build(model, shape, where)
    return model


def _functional_from_config(cls, config, make_layer):
    name = config.get("name")
    where = f"Model '{name}'"
    layers, outputs_of, pending = {}, {}, {}
    for i, entry in enumerate(_list_of(config, "layers", where)):
        layer = make_layer(entry, f"{where}, layer {i}")
        layer_name = entry.get("name", layer.name)
        if not isinstance(layer_name, str) or layer_name in layers:
            raise SavingError(f"{where}: layer {i} has a missing or repeated name {layer_name!r}.")
        layers[layer_name] = layer
        if isinstance(layer, InputLayer):
            outputs_of[layer_name] = [layer.output]
        else:
            outputs_of[layer_name] = []
            nodes = entry.get("inbound_nodes", [])
            if not isinstance(nodes, list):
                raise SavingError(f"{where}: 'inbound_nodes' of layer '{layer_name}' must be a list.")
            pending[layer_name] = list(nodes)

    def tensor(history):
        if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
                and all(isinstance(i, int) and not isinstance(i, bool) for i in history[1:])):
            raise SavingError(f"{where}: bad tensor reference {_short(history)}.")
        layer_name, node_index, tensor_index = history
        if layer_name not in layers:
            raise SavingError(f"{where}: a call refers to layer '{layer_name}', which is not in it.")
        done = outputs_of[layer_name]
        if node_index >= len(done):
            return _NOT_READY
        flat = tree.flatten(done[node_index])
        if not 0 <= tensor_index < len(flat):
            raise SavingError(
                f"{where}: a call refers to output {tensor_index} of layer '{layer_name}', which "
                f"has {len(flat)} output(s)."
            )
        return flat[tensor_index]

    def decode(value):
        """Node arguments with tensor references resolved; _NOT_READY while one is not made yet."""
        if isinstance(value, dict) and value.get("class_name") == TENSOR_MARKER:
            config_ = value.get("config")
            return tensor(config_.get("keras_history") if isinstance(config_, dict) else None)
        if isinstance(value, list):
            items = [decode(v) for v in value]
            return _NOT_READY if any(i is _NOT_READY for i in items) else items
        if isinstance(value, dict):
            items = {k: decode(v) for k, v in value.items()}
            return _NOT_READY if any(i is _NOT_READY for i in items.values()) else items
        return value

    progress = True
    while progress and any(pending.values()):
        progress = False
        for layer_name, nodes in pending.items():
            while nodes:
                node = nodes[0]
                if not isinstance(node, dict):
                    raise SavingError(f"{where}: a call of layer '{layer_name}' is not a dict.")
                args = decode(_list_of(node, "args", f"{where}, layer '{layer_name}'"))
                kwargs = decode(node.get("kwargs") or {})
                if args is _NOT_READY or kwargs is _NOT_READY:
                    break
                if not isinstance(kwargs, dict):
                    raise SavingError(f"{where}: the kwargs of a call of '{layer_name}' must be a dict.")
                outputs_of[layer_name].append(_call(layers[layer_name], args, kwargs, where))
                nodes.pop(0)
                progress = True
    if any(pending.values()):
        stuck = next(n for n, nodes in pending.items() if nodes)
        raise SavingError(
            f"{where}: the call of layer '{stuck}' needs a tensor that no layer in the config "
            "produces (the graph is disconnected or circular)."
        )

    def endpoint(structure):
        if isinstance(structure, list) and len(structure) == 3 and isinstance(structure[0], str):
            t = tensor(structure)
            if t is _NOT_READY:
                raise SavingError(f"{where}: refers to a call that does not exist: {structure}.")
            return t
        if isinstance(structure, list) and structure:
            return [endpoint(s) for s in structure]
        if isinstance(structure, dict) and structure:
            return {k: endpoint(v) for k, v in structure.items()}
        raise SavingError(f"{where}: bad input/output reference {_short(structure)}.")

    inputs, outputs = endpoint(config["input_layers"]), endpoint(config.get("output_layers"))
    try:
        return cls(inputs=inputs, outputs=outputs, name=name, trainable=config.get("trainable", True))
    except (ValueError, TypeError) as e:
        raise SavingError(f"{where}: could not assemble the model: {e}") from e


def _call(layer, args, kwargs, where):
    if not args:
        raise SavingError(f"{where}: a call of layer '{layer.name}' has no arguments.")
    try:
        return layer(*args, **kwargs)
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(
            f"{where}: calling layer '{layer.name}' ({type(layer).__name__}) on its recorded "
            f"inputs failed: {type(e).__name__}: {e}"
        ) from e


def _list_of(config, key, where) -> list:
    value = config.get(key) if isinstance(config, dict) else None
    if not isinstance(value, list):
        raise SavingError(f"{where}: '{key}' must be a list, found {_short(value)}.")
    return value


def _short(value) -> str:
    text = json.dumps(value, default=repr) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
