"""model.summary(): the layers, their output shapes and parameter counts, with the formula."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from lamina.layers.base import Layer, _to_keras


def _shape_str(layer, model) -> str:
    outs = getattr(model, "_outputs_symbolic", None)
    if outs and layer in list(model.layers):
        return str(outs[list(model.layers).index(layer)].shape)
    node = getattr(layer, "output", None)
    if node is not None and hasattr(node, "shape"):
        return str(node.shape)
    for n in getattr(model, "_nodes", []):
        if n.layer is layer:
            from lamina.utils import tree

            shapes = [t.shape for t in tree.flatten(n.outputs)]
            return str(shapes[0] if len(shapes) == 1 else shapes)
    return "?"


def param_formula(layer) -> str:
    """'8×1×128 + 128 = 1,152' from the Keras shapes of the layer's weights."""
    if not isinstance(layer, Layer) or not layer.built:
        return ""
    terms = ["×".join(str(d) for d in _to_keras(t, lay).shape) or "1"
             for t, lay in layer._keras_weights()]
    if not terms:
        return ""
    total = f"{sum(t.numel() for t in layer.weights):,}"
    return total if terms == [total] else f"{' + '.join(terms)} = {total}"


def _param_count(layer) -> str:
    if isinstance(layer, Layer) and not layer.built:
        return "0 (unbuilt)"  # as Keras: the weights come with the first call
    return f"{sum(t.numel() for t in layer.weights) if isinstance(layer, Layer) else 0:,}"


def trainable_flag(layer) -> str:
    """Keras' Trainable column: '-' for a layer without weights, else Y or N."""
    if not (isinstance(layer, Layer) and layer.weights):
        return "-"
    return "Y" if layer.trainable else "N"


def print_summary(model, print_fn=None, expand_nested=False, show_trainable=False):
    """Print the table; a model not built yet lists its layers with "?" shapes and
    "0 (unbuilt)" counts, as Keras does."""
    table = Table(title=f'Model: "{model.name}"', title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    table.add_column("Formula")
    if show_trainable:
        table.add_column("Trainable", justify="center")
    for layer in model.layers:
        row = [f"{layer.name} ({type(layer).__name__})", _shape_str(layer, model) if model.built else "?",
               _param_count(layer), param_formula(layer)]
        table.add_row(*row, *([trainable_flag(layer)] if show_trainable else []))
    trainable = sum(t.numel() for t in model.trainable_weights)
    total = sum(t.numel() for t in model.weights)
    buffer = io.StringIO() if print_fn is not None else None
    console = Console(file=buffer, width=120)
    console.print(table)
    console.print(f" Total params: {total:,}")
    console.print(f" Trainable params: {trainable:,}")
    console.print(f" Non-trainable params: {total - trainable:,}")
    if print_fn is not None:
        print_fn(buffer.getvalue())
