"""Op nodes in Keras 3 configs: a lamina `OpLayer` node (`x + y`, `ops.mean(x, axis=1)`, `x[:, 0]`)
written as the Keras Operation node Keras writes for the same call, and read back.

Keras records an op call as its Operation class (keras.src.ops.<module>.<ClassName>) whose
constructor arguments go into the node's "config" (`Mean(axis=1, keepdims=False)`) and whose
`call` arguments into the node's "args" (`[x]`). Which is which is the class's own signatures,
kept in keras_op_table.py (derived once from Keras and checked against it by a test), so neither
direction needs Keras installed. lamina's op functions take Keras' argument names, so a call is
translated by binding it to the lamina function's signature and splitting the bound arguments by
that table. An op Keras has no Operation class for is not in the table: the writer leaves it to
the lamina-only entry ("lamina>OpLayer", which lamina reloads and Keras refuses by name).
"""

from __future__ import annotations

import inspect

from lamina.ops._dispatch import _OPS
from lamina.saving import config as config_mod
from lamina.saving.errors import SavingError
from lamina.saving.keras_op_table import KERAS_OPS

_KERAS_MODULE = "keras.src.ops."
# (module, class name) -> lamina op name, for reading; an alias (swish for Silu) never displaces
# the op the class is named after
_BY_CLASS: dict[tuple, str] = {}
for _name, (_module, _class_name, _, _) in KERAS_OPS.items():
    if (_module, _class_name) not in _BY_CLASS or _name.replace("_", "") == _class_name.lower():
        _BY_CLASS[(_module, _class_name)] = _name


# ----------------------------------------------------------------------------- argument encodings
def _key_to_keras(key):
    """ops.get_item's key from lamina's JSON form ({"index": [...]}, see ops.numpy._encoded_key) to
    Keras' (a list for a tuple, slices and Ellipsis as Keras' "__slice__"/"__ellipsis__" objects)."""
    def item(k):
        if isinstance(k, dict) and "slice" in k:
            start, stop, step = k["slice"]
            return {"class_name": "__slice__", "config": {"start": start, "stop": stop, "step": step}}
        if isinstance(k, dict) and k.get("ellipsis"):
            return {"class_name": "__ellipsis__", "config": {}}
        return k

    if not (isinstance(key, dict) and isinstance(key.get("index"), list)):
        return key
    items = [item(k) for k in key["index"]]
    return items[0] if len(items) == 1 else items


def _key_from_keras(key):
    """Keras' form of an indexing key (a list stands for a tuple, as Keras' GetItem reads it)."""
    def item(k):
        if isinstance(k, dict) and k.get("class_name") == "__slice__":
            c = k.get("config") or {}
            return {"slice": [c.get("start"), c.get("stop"), c.get("step")]}
        if isinstance(k, dict) and k.get("class_name") == "__ellipsis__":
            return {"ellipsis": True}
        return k

    return {"index": [item(k) for k in (key if isinstance(key, list) else [key])]}


# Arguments whose JSON form differs between the two: (op, argument) -> (to Keras, from Keras)
_CODECS = {("get_item", "key"): (_key_to_keras, _key_from_keras)}
_TO_KERAS, _FROM_KERAS = 0, 1


def _encoded(op_name, values: dict, direction: int) -> dict:
    return {k: _CODECS[(op_name, k)][direction](v) if (op_name, k) in _CODECS else v
            for k, v in values.items()}


# ----------------------------------------------------------------------------- lamina -> Keras
def has_keras_op(entry) -> bool:
    return entry.get("class_name") == "OpLayer" and entry["config"].get("function") in KERAS_OPS


def to_keras(entry, where) -> dict:
    """A lamina OpLayer entry (with its inbound_nodes) as Keras' Operation entry."""
    function, name = entry["config"]["function"], entry["config"].get("name")
    module, class_name, config_names, call_names = KERAS_OPS[function]
    where = f"{where}, op '{name}' (ops.{function})"
    arguments = entry["config"].get("arguments") or {}
    config, nodes = None, []
    for node in entry.get("inbound_nodes", []):
        values = _encoded(function, _bound(function, node, arguments, config_names + call_names, where),
                          _TO_KERAS)
        node_config = {k: values[k] for k in config_names}
        if config is not None and node_config != config:
            raise SavingError(f"{where} is called with different arguments {config} and {node_config}; "
                              "Keras keeps one set per op. Call the op once per node.")
        config = node_config
        args = []
        for call_name in call_names:
            args += values[call_name[1:]] if call_name.startswith("*") else [values[call_name]]
        nodes.append({"args": args, "kwargs": {}})
    return {"module": _KERAS_MODULE + module, "class_name": class_name,
            "config": {"name": name, **(config or {})}, "registered_name": class_name,
            "name": entry.get("name", name), "inbound_nodes": nodes}


def _bound(function, node, arguments, keras_names, where) -> dict:
    """The call's arguments by name, defaults filled in; an argument Keras' op lacks may only be
    at its default."""
    signature = inspect.signature(_OPS[function])
    try:
        bound = signature.bind(*node.get("args", []), **{**arguments, **(node.get("kwargs") or {})})
    except TypeError as e:
        raise SavingError(f"{where}: its recorded call does not fit ops.{function}{signature}: {e}") from e
    bound.apply_defaults()
    keras = {n.lstrip("*") for n in keras_names}
    for key, value in bound.arguments.items():
        default = signature.parameters[key].default
        if key not in keras and value != default:
            raise SavingError(f"{where} sets {key}={config_mod._short(value)}, which Keras' op does not "
                              "take. Save it as .lamina instead.")
    return dict(bound.arguments)


# ----------------------------------------------------------------------------- Keras -> lamina
def from_keras(entry, nodes, where) -> dict:
    """A Keras Operation entry (a node in a functional config) as a lamina OpLayer entry; `nodes`
    are its calls as keras_import translated them ({"args", "kwargs"})."""
    module = str(entry.get("module") or "").removeprefix(_KERAS_MODULE).removeprefix("keras.ops.")
    class_name = entry.get("class_name")
    function = _BY_CLASS.get((module, class_name))
    name = entry.get("name")
    if function is None:
        raise SavingError(
            f"{where}: the graph applies the Keras operation {class_name} ('{name}', "
            f"{entry.get('module')}), which lamina has no op for; express it with layers or ops "
            "that lamina has.")
    _, _, config_names, call_names = KERAS_OPS[function]
    if not isinstance(entry.get("config"), dict):
        raise SavingError(f"{where}: Keras operation '{name}' ({class_name}) has no config dict.")
    config = {k: v for k, v in entry["config"].items() if k != "name"}
    unknown = set(config) - set(config_names)
    if unknown:
        raise SavingError(f"{where}: Keras operation '{name}' ({class_name}) sets {sorted(unknown)}, "
                          f"which lamina's ops.{function} does not take.")
    return {"class_name": "OpLayer", "registered_name": None,
            "config": {"name": name, "function": function}, "name": name,
            "inbound_nodes": [_lamina_call(function, call_names, config, node, where) for node in nodes]}


def _lamina_call(function, call_names, config, node, where) -> dict:
    """A Keras op call as lamina's: every argument by name, then positional in the lamina
    function's order as far as it goes (the order a var-positional argument needs)."""
    values, args = dict(config), list(node["args"])
    for i, call_name in enumerate(call_names):
        if call_name.startswith("*"):
            values[call_name[1:]] = args[i:]
            args = []
            break
        if i < len(args):
            values[call_name] = args[i]
    if len(args) > len(call_names):
        raise SavingError(f"{where}: a call of ops.{function} has {len(args)} arguments, more "
                          f"than Keras' {call_names}.")
    values = _encoded(function, {**values, **node["kwargs"]}, _FROM_KERAS)
    positional, keywords, gap = [], {}, False
    for parameter in inspect.signature(_OPS[function]).parameters.values():
        if parameter.name not in values:
            gap = True  # left at its default: what follows goes by name
            continue
        value = values.pop(parameter.name)
        if parameter.kind is parameter.VAR_POSITIONAL:
            positional += value
        elif parameter.kind is parameter.KEYWORD_ONLY or gap:
            keywords[parameter.name] = value
        else:
            positional.append(value)
    if values:
        raise SavingError(f"{where}: ops.{function} does not take {sorted(values)}.")
    return {"args": positional, "kwargs": keywords}
