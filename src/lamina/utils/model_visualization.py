"""plot_model and model_to_dot, as in keras.utils: a picture of a model's layer graph.

The graph is written as Graphviz DOT text and drawn by Graphviz's `dot` program (a system
package: `apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`); no
Python package is needed. `model_to_dot` returns the DOT source itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from lamina.utils import tree

_INSTALL_HINT = ("plot_model needs Graphviz's `dot` program, which was not found on PATH. Install "
                 "Graphviz (apt-get install graphviz, brew install graphviz, or conda install "
                 "graphviz) and retry; model_to_dot(model) returns the DOT text without it.")


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape_text(shapes) -> str:
    shapes = [tuple(s) for s in shapes]
    if not shapes:
        return "?"
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _layer_edges(model):
    """[(layer, [input shapes], [output shapes], [parent layers])] in the model's order, for a
    functional graph or a Sequential stack; None for a model without a graph."""
    if getattr(model, "_graph", False):
        rows = [(t.node.layer, [], [t.shape], []) for t in model._flat_inputs]
        for node in model._nodes:
            ins = [t.shape for t in tree.flatten((node.args, node.kwargs)) if hasattr(t, "node")]
            rows.append((node.layer, ins, [t.shape for t in tree.flatten(node.outputs)],
                         [p.layer for p in node.parents]))
        return _merge_repeated_calls(rows)
    outputs = getattr(model, "_outputs_symbolic", None)
    if outputs is None:
        return None
    start = getattr(model, "_input_tensor", None)
    out_shapes = [t.shape for t in outputs]  # empty until a Sequential without Input is built
    rows, previous, in_shape = [], None, None
    if start is not None:
        previous, in_shape = start.node.layer, start.shape
        rows.append((previous, [], [in_shape], []))
    for i, layer in enumerate(model.layers):
        out_shape = out_shapes[i] if i < len(out_shapes) else None
        rows.append((layer, [in_shape] if in_shape else [], [out_shape] if out_shape else [],
                     [previous] if previous is not None else []))
        previous, in_shape = layer, out_shape
    return rows


def _merge_repeated_calls(rows):
    """One row per layer (a shared layer called twice is one box with several parents)."""
    merged: dict[int, tuple] = {}
    for layer, ins, outs, parents in rows:
        if id(layer) in merged:
            old = merged[id(layer)]
            merged[id(layer)] = (layer, old[1] + ins, old[2] + outs, old[3] + parents)
        else:
            merged[id(layer)] = (layer, ins, outs, parents)
    return list(merged.values())


def _label(layer, ins, outs, show_shapes, show_dtype, show_layer_names, show_layer_activations,
           show_trainable) -> str:
    kind = type(layer).__name__
    lines = [f"{layer.name} ({kind})" if show_layer_names else kind]
    activation = getattr(layer, "activation", None)
    if show_layer_activations and activation is not None:
        lines.append(f"Activation: {getattr(activation, '__name__', type(activation).__name__)}")
    if show_dtype:
        lines.append(f"dtype: {str(getattr(layer, 'dtype', None) or 'float32').replace('torch.', '')}")
    if show_shapes:
        if ins:
            lines.append(f"Input shape: {_shape_text(ins)}")
        lines.append(f"Output shape: {_shape_text(outs)}")
    if show_trainable:
        from lamina.models.summary import trainable_flag  # models import utils: import late

        lines.append(f"Trainable: {trainable_flag(layer)}")  # summary()'s column: Y, N or -
    return "\\n".join(_quote(line)[1:-1] for line in lines)


def _emit(model, lines, options, expand_nested, prefix=""):
    """DOT statements for `model`'s layers; returns (entry node ids, exit node id) so an
    expanded nested model can be wired into its parent."""
    rows = _layer_edges(model)
    if rows is None:
        node_id = f"{prefix}{id(model)}"
        lines.append(f'  "{node_id}" [label="{_label(model, [], [], *options)}"];')
        return {id(model): (node_id, node_id)}
    ends: dict[int, tuple[str, str]] = {}
    for layer, ins, outs, parents in rows:
        nested = expand_nested and _layer_edges(layer) is not None and layer is not model
        if nested:
            lines.append(f'  subgraph "cluster_{prefix}{id(layer)}" {{')
            lines.append(f"    label={_quote(layer.name)}; style=dashed;")
            inner = _emit(layer, lines, options, expand_nested, prefix=f"{prefix}{id(layer)}_")
            lines.append("  }")
            ordered = list(inner.values())
            ends[id(layer)] = (ordered[0][0], ordered[-1][1])
        else:
            node_id = f"{prefix}{id(layer)}"
            lines.append(f'  "{node_id}" [label="{_label(layer, ins, outs, *options)}"];')
            ends[id(layer)] = (node_id, node_id)
        for parent in parents:
            if id(parent) in ends:
                lines.append(f'  "{ends[id(parent)][1]}" -> "{ends[id(layer)][0]}";')
    return ends


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False,
                 show_trainable=False, **kwargs) -> str:
    """The Graphviz DOT source of the model's layer graph (keras.utils.model_to_dot's arguments;
    Keras returns a pydot object, lamina the text it would render)."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(f'plot_model: `rankdir` must be "TB" or "LR". Received: rankdir={rankdir!r}')
    unknown = set(kwargs) - {"layer_range"}
    if unknown:
        raise TypeError(f"model_to_dot: unexpected argument(s) {sorted(unknown)}.")
    options = (show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable)
    lines = [f"digraph {_quote(model.name)} {{",
             f"  graph [rankdir={rankdir}, dpi={int(dpi)}, concentrate=true];",
             '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", fontname="Helvetica"];']
    _emit(model, lines, options, expand_nested)
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False,
               show_trainable=False, **kwargs):
    """Draw the model's layer graph to `to_file`; the extension picks the format (png, svg,
    pdf, jpg, or dot for the source). Needs Graphviz's `dot` program except for .dot files."""
    source = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                          show_layer_names=show_layer_names, rankdir=rankdir,
                          expand_nested=expand_nested, dpi=dpi,
                          show_layer_activations=show_layer_activations,
                          show_trainable=show_trainable, **kwargs)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1].lstrip(".").lower() or "png"
    if extension in ("dot", "gv"):
        with open(to_file, "w", encoding="utf-8") as f:
            f.write(source)
        return None
    dot = shutil.which("dot")
    if dot is None:
        raise ImportError(_INSTALL_HINT)
    done = subprocess.run([dot, f"-T{extension}", "-o", to_file], input=source.encode("utf-8"),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise ValueError(f"plot_model: Graphviz could not write {to_file!r} as {extension!r}: "
                         f"{done.stderr.decode(errors='replace').strip()}")
    return None
