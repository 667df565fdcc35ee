"""Model: a Layer that can be trained. Functional (`Model(inputs, outputs)`) or subclassed.

A functional model is the graph of layer calls between its Input tensors and its outputs, found by
walking the nodes back from the outputs; calling it runs those layers in topological order.
A subclassed model defines `call` itself.
"""

from __future__ import annotations

import torch

from lamina import distributed
from lamina.data.adapters import match_input_dtype, match_input_rank
from lamina.layers.base import Layer
from lamina.layers.input_layer import InputLayer
from lamina.layers.symbolic import SymbolicTensor
from lamina.models._folding import relu_folds_into, relu_pairs
from lamina.models.training import Trainer
from lamina.utils import tree


class Model(Trainer, Layer):
    """Groups layers into an object with training and inference features.

    Functional:
        >>> inp = layers.Input((8,))
        >>> out = layers.Dense(2, activation="softmax")(layers.Dense(16, activation="relu")(inp))
        >>> model = Model(inp, out)

    Subclassed: define the layers in `__init__` and the forward pass in `call(inputs, training)`.
    """

    resolves_training = False

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        Layer.__init__(self, name=name, **kwargs)
        Trainer.__init__(self)
        self._graph = False
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs) needs both `inputs` and `outputs`.")
            self._init_graph(inputs, outputs)

    # ----------------------------------------------------------------- functional graph
    def _init_graph(self, inputs, outputs):
        flat_in, flat_out = tree.flatten(inputs), tree.flatten(outputs)
        for t in flat_in:
            if not (isinstance(t, SymbolicTensor) and isinstance(t.node.layer, InputLayer)):
                raise ValueError(
                    f"Model `inputs` must be tensors made by layers.Input(...). Received: {t!r}"
                )
        for t in flat_out:
            if not isinstance(t, SymbolicTensor):
                raise ValueError(
                    "Model `outputs` must be the results of calling layers on Input tensors. "
                    f"Received: {t!r}"
                )
        order, seen = [], set()

        def visit(node):
            if id(node) in seen:
                return
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)

        for t in flat_out:
            visit(t.node)
        input_nodes = {id(t.node) for t in flat_in}
        for node in order:
            if isinstance(node.layer, InputLayer) and id(node) not in input_nodes:
                raise ValueError(
                    f"Graph disconnected: the output depends on Input '{node.layer.name}', which "
                    "is not among the model's `inputs`."
                )
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._flat_inputs, self._flat_outputs = flat_in, flat_out
        self._nodes = [n for n in order if id(n) not in input_nodes]
        self._relu_pairs = relu_pairs(self._nodes, flat_out)
        layers = [t.node.layer for t in flat_in]
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        names = [layer.name for layer in layers]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(
                f"All layers in a model must have unique names; '{duplicate}' is used twice."
            )
        self._graph_layers = torch.nn.ModuleList(layers)
        self._graph = True
        self.built = True

    @property
    def layers(self) -> list:
        if self._graph:
            # As in Keras, the ops of the graph (`x + y`, `ops.mean`) are nodes, not layers.
            return [layer for layer in self._graph_layers if not getattr(layer, "is_op", False)]
        return self._sublayers()

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"No layer named '{name}' in model '{self.name}'. "
            f"Layers: {[layer.name for layer in self.layers]}"
        )

    @property
    def inputs(self):
        return self._flat_inputs if self._graph else None

    @property
    def outputs(self):
        return self._flat_outputs if self._graph else None

    # Keras' `model.input` / `model.output`: the structure the model was made with (a single
    # tensor, a list or a dict); a Sequential's single input and output are plain tensors.
    @property
    def input(self):
        if self._graph:
            return self._inputs_struct
        return self._single_or_list(self.inputs, "input")

    @property
    def output(self):
        if self._graph:
            return self._outputs_struct
        return self._single_or_list(self.outputs, "output")

    # Keras' `input_shape` / `output_shape`: the shapes of `inputs` / `outputs`, one tuple when
    # there is one tensor.
    @property
    def input_shape(self):
        return _shapes(self._single_or_list(self.inputs, "input"))

    @property
    def output_shape(self):
        return _shapes(self._single_or_list(self.outputs, "output"))

    def _single_or_list(self, tensors, what):
        if not tensors:
            raise AttributeError(
                f"Model '{self.name}' has no symbolic {what}: it was not built from "
                "layers.Input (give it an Input, or call it on data first)."
            )
        return tensors[0] if len(tensors) == 1 else tensors

    def call(self, inputs, training=None, mask=None):
        if not self._graph:
            raise NotImplementedError(
                f"Model '{self.name}' has no graph and no call(): create it as "
                "Model(inputs, outputs), or subclass Model and define call(self, inputs)."
            )
        values = {}
        for sym, x in zip(self._flat_inputs, self._match_inputs(inputs)):
            values[id(sym)] = x
        def value(t):
            return values[id(t)] if isinstance(t, SymbolicTensor) else t

        folded = set()  # Activation("relu") nodes whose BatchNormalization applied it already
        for index, node in enumerate(self._nodes):
            if index in folded:
                values[id(node.outputs)] = values[id(node.args[0])]
                continue
            args = tree.map_structure(value, node.args)
            kwargs = tree.map_structure(value, node.kwargs)
            if training is not None:
                kwargs.setdefault("training", training)
            follower = self._relu_pairs.get(index)
            if follower is not None and relu_folds_into(node.layer, self._nodes[follower].layer, args[0],
                                                        training):
                folded.add(follower)
                kwargs["_relu"] = True
            out = node.layer(*args, **kwargs)
            for sym, v in zip(tree.flatten(node.outputs), tree.flatten(out)):
                values[id(sym)] = v
        return tree.map_structure(value, self._outputs_struct)

    def _match_inputs(self, inputs) -> list:
        """The user's inputs in the order of the model's Input tensors, with clear errors."""
        names = [t.node.layer.name for t in self._flat_inputs]
        if isinstance(inputs, dict):
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(
                    f"Model '{self.name}' expects inputs named {names}; missing {missing}. "
                    f"Received keys: {sorted(inputs)}"
                )
            flat = [inputs[n] for n in names]
        else:
            flat = tree.flatten(inputs)
        if len(flat) != len(names):
            raise ValueError(
                f"Model '{self.name}' expects {len(names)} input(s) ({names}), but received "
                f"{len(flat)}."
            )
        for i, (sym, x) in enumerate(zip(self._flat_inputs, flat)):
            if not isinstance(x, torch.Tensor):
                x = flat[i] = torch.as_tensor(x)
            x = flat[i] = match_input_dtype(match_input_rank(x, sym.shape), sym.dtype,
                                            f"Input '{sym.node.layer.name}' of model '{self.name}'")
            expected = sym.shape
            got = tuple(x.shape)
            if len(got) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected[1:], got[1:])
            ):
                raise ValueError(
                    f"Input '{sym.node.layer.name}' of model '{self.name}' expects shape "
                    f"{expected}, but received data of shape {got}."
                )
        return flat

    def compute_output_shape(self, input_shape):
        if self._graph:
            own = tree.map_structure(lambda t: t.shape, self._inputs_struct)
            if tree.flatten(own) == tree.flatten(input_shape) or own == input_shape:
                return tree.map_structure(lambda t: t.shape, self._outputs_struct)
        return super().compute_output_shape(input_shape)

    def get_config(self) -> dict:
        if self._graph:
            from lamina.saving.config import model_config

            return model_config(self)
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild a model from `get_config()`: functional, Sequential or subclassed."""
        from lamina.saving.config import custom_object_scope, model_from_config

        with custom_object_scope(custom_objects):
            return model_from_config(cls, config)

    # ----------------------------------------------------------------- saving
    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Save the model to one file; the suffix picks the format: ".keras" (a Keras 3 archive
        that Keras itself loads) or ".lamina" (lamina's own, with the optimizer state). See
        `lamina.saving.save_model`. In data-parallel training, rank 0 alone writes."""
        from lamina.saving import save_model

        if not distributed.is_main_process():
            return
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights to a ".weights.h5" file in Keras 3's layout (Keras' `load_weights`
        reads it) or to a ".safetensors" file of the state_dict (rank 0 alone writes in
        data-parallel training)."""
        from lamina.saving import save_weights

        if not distributed.is_main_process():
            return
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, allow_nonfinite=False):
        """Load weights from .safetensors, .lamina, .keras, .weights.h5 or legacy .h5 files, all
        or nothing; NaN or infinite weights are refused unless `allow_nonfinite=True`."""
        from lamina.saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch, allow_nonfinite=allow_nonfinite)

    def to_json(self, **kwargs) -> str:
        """The architecture as Keras 3's JSON; `lamina.models.model_from_json` (or Keras' own)
        rebuilds it with new weights. `kwargs` go to `json.dumps`."""
        from lamina.saving.serialization import model_to_json

        return model_to_json(self, **kwargs)

    def export(self, filepath, format=None, verbose=True, input_signature=None, opset_version=None):
        """Export the model for inference, as Keras' `model.export`: format "onnx" (the default
        for a '.onnx' path), through torch's ONNX exporter. The graph is the model in inference
        mode, in float32, with a dynamic batch axis.

        Args:
            filepath: where to write, e.g. "model.onnx".
            format: "onnx", or None to take it from the file's suffix.
            verbose: print where the file went.
            input_signature: the input shapes, e.g. [(None, 150, 1)], for a model whose inputs
                are not known (a subclassed model never called); None axes stay dynamic.
            opset_version: the ONNX opset (torch's default if None).

        Example:
            >>> model.export("fcn.onnx")
            >>> import onnxruntime
            >>> session = onnxruntime.InferenceSession("fcn.onnx")
            >>> probs = session.run(None, {"series": x_test})[0]
        """
        from lamina.export import export_model

        export_model(self, filepath, format=format, input_signature=input_signature,
                     opset_version=opset_version, verbose=verbose)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print a table of the layers, their output shapes and parameter counts (and, with
        `show_trainable`, whether each is trainable). `line_length`, `positions` and
        `layer_range` are accepted for Keras compatibility; the table sizes itself."""
        from lamina.models.summary import print_summary

        print_summary(self, print_fn=print_fn, expand_nested=expand_nested,
                      show_trainable=show_trainable)


def _shapes(structure):
    return tree.map_structure(lambda t: t.shape, structure)
