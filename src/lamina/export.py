"""Exporting a model for serving: ONNX through torch's own exporter (`torch.onnx.export`, which
captures the graph with torch.export).

The exported graph is the model in inference mode: dropout off, BatchNormalization on its moving
statistics, float32. The batch axis, and any other axis an Input left as None, stays dynamic.
Normalization layers record plain tensor ops while a graph is captured, so the file holds only
standard ONNX operators. The exporter needs the `onnx` and `onnxscript` packages
(`pip install "lamina[export]"`, which adds onnxruntime to run the file).
"""

from __future__ import annotations

import os
import warnings

import torch

from lamina import distributed
from lamina.kernels import DECOMPOSITIONS
from lamina.utils import tree

__all__ = ["export_model"]

FORMATS = ("onnx",)
# Example sizes traced for dynamic axes: above 1, since torch.export treats sizes 0 and 1 as
# constants, and different for batch and other axes so that no equality between them is assumed.
_EXAMPLE_BATCH, _EXAMPLE_LENGTH = 2, 3


def export_model(model, filepath, format=None, input_signature=None, opset_version=None,
                 verbose=True) -> None:
    """Write `model` as an inference artifact at `filepath` (see `Model.export`)."""
    filepath = os.fspath(filepath)
    format = _resolve_format(filepath, format)
    shapes = _input_shapes(model, input_signature)
    if not distributed.is_main_process():
        return
    device = model._device()
    inputs = getattr(model, "inputs", None) or []
    dtypes = [t.dtype for t in inputs] if len(inputs) == len(shapes) else [torch.float32] * len(shapes)
    examples = [torch.zeros([_example_size(i, d) for i, d in enumerate(s)], dtype=dtype, device=device)
                for s, dtype in zip(shapes, dtypes)]
    batch = torch.export.Dim("batch")  # one batch size for all inputs
    dims = [{i: batch if i == 0 else torch.export.Dim(f"input{k}_axis{i}")
             for i, d in enumerate(s) if d is None} for k, s in enumerate(shapes)]
    names = _input_names(model, len(shapes))
    single = len(shapes) == 1
    args = (examples[0],) if single else (examples,)
    dynamic_shapes = (dims[0],) if single else (dims,)
    try:
        import onnxscript  # noqa: F401  (the exporter's own dependency: fail here with the fix)
    except ImportError as e:
        raise ImportError(
            "model.export(format='onnx') needs the `onnx` and `onnxscript` packages: "
            "pip install 'lamina[export]'"
        ) from e
    with model._modes(False), torch.no_grad(), warnings.catch_warnings():
        # torch.export's own deprecation notices about its internals are not the user's business.
        warnings.simplefilter("ignore", FutureWarning)
        outputs = model(*args)
        program = _capture(model, args, dynamic_shapes, names)
        torch.onnx.export(program, f=filepath, input_names=names,
                          output_names=model._output_names(len(tree.flatten(outputs))),
                          opset_version=opset_version, verbose=False)
    if verbose:
        print(f"Saved an ONNX model of '{model.name}' to {filepath} (inputs {names}: "
              f"{[tuple(s) for s in shapes]}).")


def _capture(model, args, dynamic_shapes, names):
    """The model's graph (torch.export). Captured here rather than by torch.onnx, which would
    quietly fall back to fixing the size of an axis that was asked to stay dynamic."""
    try:
        program = torch.export.export(model, args, dynamic_shapes=dynamic_shapes, strict=False)
    except torch._dynamo.exc.UserError as e:
        if getattr(e, "error_type", None) != torch._dynamo.exc.UserErrorType.CONSTRAINT_VIOLATION:
            raise
        raise ValueError(
            f"model.export: a layer of model '{model.name}' fixes the size of an input axis that "
            f"its Input leaves as None (inputs {names}), so the exported graph cannot keep that axis "
            "dynamic. Give the axis a size with input_signature, e.g. [(None, 50, 3)] for sequences "
            f"of 50 steps (the batch axis stays dynamic). torch.export said: {str(e).splitlines()[1:2]}"
        ) from e
    # lamina's own operators become their plain-torch formulas: ONNX knows only standard ops.
    return program.run_decompositions(DECOMPOSITIONS)


def _resolve_format(filepath, format):
    if format is None:
        format = os.path.splitext(filepath)[1].lstrip(".").lower()
        if format not in FORMATS:
            raise ValueError(
                f"model.export: cannot tell the format from {filepath!r}; name the file '*.onnx' or "
                f"pass format='onnx'. Received: filepath={filepath!r}"
            )
    if format not in FORMATS:
        raise ValueError(
            f"model.export: unsupported format {format!r}; lamina exports {list(FORMATS)} (Keras' "
            f"TensorFlow formats need TensorFlow). Received: format={format!r}"
        )
    return format


def _input_shapes(model, input_signature):
    """The Keras shapes (batch axis None) of the model's inputs."""
    if input_signature is not None:
        signature = [input_signature] if _is_shape(input_signature) else list(input_signature)
        shapes = [tuple(s.shape) if hasattr(s, "shape") else tuple(s) for s in signature]
    elif getattr(model, "inputs", None):
        shapes = [tuple(t.shape) for t in model.inputs]
    elif model._build_input_shape is not None and _is_shape(model._build_input_shape):
        shapes = [tuple(model._build_input_shape)]
    else:
        raise ValueError(
            f"model.export: the input shape of model '{model.name}' is unknown. Call the model on "
            "data first, or pass input_signature=[(None, *shape)], e.g. [(None, 150, 1)]."
        )
    return [(None, *s[1:]) for s in shapes]


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def _example_size(axis, size):
    if size is not None:
        return size
    return _EXAMPLE_BATCH if axis == 0 else _EXAMPLE_LENGTH


def _input_names(model, count):
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == count:
        return [t.node.layer.name for t in inputs]
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]
