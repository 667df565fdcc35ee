"""What lamina knows about Keras 3's file layout, shared by the reader (keras_import.py) and the
writer (keras_export.py).

Keras 3 keeps a model's arrays in an HDF5 tree that mirrors the model's objects:

    layers/<group>/vars/0, 1, ...     a layer's own arrays, in its get_weights order
    layers/<group>/cell/vars/...      an RNN's arrays live in its cell
    layers/<group>/forward_layer/..., backward_layer/...    Bidirectional's two RNNs
    layers/<group>/layers/...         a nested model's layers, recursively
    vars                              the model's own (empty) group
    <attribute>/vars/...              Keras' subclassed models: a layer under the attribute
                                      that holds it (Keras reads either form)

A layer's group is its class name in snake_case, numbered "_1", "_2", ... among equal names, in
the order of the model's `layers` (a Sequential's InputLayer is not among them; a functional
model's are). The tree is found by walking the model, never by the layers' own names.
"""

from __future__ import annotations

from lamina.saving import registry
from lamina.utils.naming import to_snake_case

MODEL_CLASSES = ("Functional", "Model", "Sequential")
# The root attribute in which lamina records the digest of every array of a file it writes
# (weights.digest over the datasets by path); Keras reads groups only, and ignores it.
DIGEST_ATTRIBUTE = "lamina_digest"
# The order in which Keras' get_weights lists the layers a layer holds (others: by name).
CHILD_ORDER = {"forward_layer": 0, "backward_layer": 1,
               "query_dense": 0, "key_dense": 1, "value_dense": 2, "output_dense": 3}
# MultiHeadAttention keeps its four projections' arrays (kernel and, with use_bias, bias each)
# in these subgroups, in this order.
_ATTENTION_GROUPS = ("query_dense", "key_dense", "value_dense", "output_dense")
# lamina's layers that Keras 3 does not have: written under "lamina>Name" as Keras'
# register_keras_serializable names a class, so that Keras' refusal names the class. OpLayer only
# for an op Keras has no Operation class for: the others are written as Keras' op nodes (keras_ops.py).
LAMINA_ONLY = ("InstanceNormalization", "SwitchableNormalization", "ConditionalBatchNormalization",
               "OpLayer", "Ensemble")
LAMINA_PACKAGE = "lamina"


def lamina_only_name(class_name: str) -> str:
    return f"{LAMINA_PACKAGE}>{class_name}"


def numbered(class_names) -> list[str]:
    """Keras' group names for layers of these classes, in order: snake_case, then _1, _2, ..."""
    used, keys = {}, []
    for class_name in class_names:
        base = to_snake_case(class_name)
        used[base] = used.get(base, -1) + 1
        keys.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return keys


def keras_class_name(layer) -> str:
    """The class name Keras records for a lamina layer ("Functional" for a functional model)."""
    from lamina.models.model import Model

    if isinstance(layer, Model) and layer._graph and registry.is_builtin(type(layer)):
        return "Functional"
    return type(layer).__name__


def layer_groups(model) -> list[tuple]:
    """(layer, its group name under "layers/") for the layers of a lamina model, in Keras' order."""
    from lamina.layers.input_layer import InputLayer
    from lamina.models.sequential import Sequential

    layers = model.layers
    if isinstance(model, Sequential):
        layers = [layer for layer in layers if not isinstance(layer, InputLayer)]
    return list(zip(layers, numbered(keras_class_name(layer) for layer in layers)))


def layer_group(group, model, layer, key):
    """The h5 group of `layer` (of `model`), or None: "layers/<key>", or, as Keras writes a
    subclassed model's layers, the name of the attribute that holds the layer."""
    if "layers" in group and key in group["layers"]:
        return group["layers"][key]
    attribute = next((name for name, child in model.named_children() if child is layer), None)
    return group[attribute] if attribute is not None and attribute in group else None


def weight_groups(layer, count: int) -> list[tuple[str, int]]:
    """Where Keras keeps a layer's `count` get_weights arrays: (group path, how many), in order.
    Only the layers that hold other layers differ from the plain ("", count)."""
    from lamina.layers.recurrent.base import Recurrent
    from lamina.layers.recurrent.bidirectional import Bidirectional

    if isinstance(layer, Bidirectional):
        half = len(layer.forward_layer.get_weights())
        return [("forward_layer/cell", half), ("backward_layer/cell", count - half)]
    if isinstance(layer, Recurrent):
        return [("cell", count)]
    if type(layer).__name__ == "MultiHeadAttention" and count % 4 == 0:
        return [(name, count // 4) for name in _ATTENTION_GROUPS]
    return [("", count)]
