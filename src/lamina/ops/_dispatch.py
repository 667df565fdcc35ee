"""How an op meets a functional graph: called on symbolic tensors, it becomes a node.

Every public op is wrapped by `op`. On concrete tensors the wrapper only checks its arguments and
calls the function; when any argument is a SymbolicTensor (a functional model being built), it
creates an `OpLayer` for the op instead, whose node records the call, so `Model(inputs, outputs)`
replays it on real data. Output shapes come from running the op itself on two dummy batches
(unknown axes set to 2, then 3): an axis that differs between the runs is unknown (None) in the
output, so the batch axis stays None and every op's own shape rule is used as it is.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from lamina.layers.base import Layer, state_updates_disabled
from lamina.layers.symbolic import Node, SymbolicTensor, is_symbolic
from lamina.utils import tree
from lamina.utils.naming import unique_name

_OPS: dict[str, object] = {}  # op name -> the undecorated function, for OpLayer and from_config


def op(fn):
    """Register `fn` as an op and make it build a graph node when called on symbolic tensors."""
    _OPS[fn.__name__] = fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _any_symbolic(args) or (kwargs and _any_symbolic(kwargs.values())):
            return OpLayer(fn.__name__)(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _any_symbolic(values) -> bool:
    # The eager call (tensors and numbers) is the common one: only containers are walked.
    for value in values:
        if isinstance(value, SymbolicTensor):
            return True
        if isinstance(value, (list, tuple, dict)) and is_symbolic(value):
            return True
    return False


class OpLayer(Layer):
    """One call of an op (e.g. `ops.mean`, `x + y`, `x[:, 0]`) inside a functional model.

    The op's non-tensor arguments are stored in the node, as a layer's call arguments are, so the
    layer itself is just the op's name. `arguments` holds keyword arguments given to every call
    instead (Keras' own configs keep e.g. `axis` there: an importer can pass them on).
    """

    is_op = True  # Model.layers leaves it out, as Keras lists only layers, not ops

    def __init__(self, function, arguments=None, name=None, **kwargs):
        if function not in _OPS:
            raise ValueError(f"OpLayer: unknown op {function!r}. Known ops: {sorted(_OPS)}")
        super().__init__(name=name or unique_name(function), **kwargs)
        self.function = function
        self.arguments = dict(arguments or {})
        self.built = True

    def __call__(self, *args, training=None, **kwargs):
        # `training` is what a model passes to every node; an op has no mode.
        if self.arguments:
            kwargs = {**self.arguments, **kwargs}
        if is_symbolic((args, kwargs)):
            return self._symbolic_node(args, kwargs)
        return _OPS[self.function](*args, **kwargs)

    def _symbolic_node(self, args, kwargs):
        runs = [self._dummy_run(args, kwargs, size) for size in (2, 3)]
        flat = [tree.flatten(r) for r in runs]
        if not all(isinstance(t, torch.Tensor) for t in flat[0]):
            raise TypeError(
                f"ops.{self.function} does not return tensors, so it cannot be used on symbolic "
                "tensors inside a functional model."
            )
        leaves = iter([SymbolicTensor(_merged_shape(a.shape, b.shape), a.dtype)
                       for a, b in zip(*flat)])
        outputs = tree.map_structure(lambda _: next(leaves), runs[0])
        node = Node(self, args, kwargs, outputs)
        for t in tree.flatten(outputs):
            t.node = node
        self._constant_argument = next((t for t in tree.flatten((args, kwargs))
                                        if isinstance(t, (torch.Tensor, np.ndarray))), None)
        return outputs

    def _dummy_run(self, args, kwargs, size):
        def dummy(t):
            if not isinstance(t, SymbolicTensor):
                return t
            return torch.zeros(tuple(size if d is None else d for d in t.shape), dtype=t.dtype)

        args, kwargs = tree.map_structure(dummy, (args, kwargs))
        try:
            with torch.no_grad(), state_updates_disabled():
                return _OPS[self.function](*args, **kwargs)
        except Exception as e:
            shapes = [t.shape for t in tree.flatten((args, kwargs)) if isinstance(t, torch.Tensor)]
            raise type(e)(f"ops.{self.function} on symbolic inputs (tried shapes {shapes}): {e}") from e

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(
            f"OpLayer '{self.name}' has no shape rule of its own: its output shape is found when "
            "the op is called on symbolic tensors."
        )

    def get_config(self) -> dict:
        constant = getattr(self, "_constant_argument", None)
        if constant is not None:
            from lamina.saving.errors import SavingError

            raise SavingError(
                f"ops.{self.function} ('{self.name}') was called in the model on a constant array "
                f"of shape {tuple(constant.shape)}, which a model config cannot hold. Make it a "
                "weight of a Layer (add_weight), or build it inside a Layer's call."
            )
        config = {**super().get_config(), "function": self.function}
        return {**config, "arguments": self.arguments} if self.arguments else config


def _merged_shape(a, b):
    if len(a) != len(b):
        raise ValueError(
            f"An op's output rank depends on the input's unknown axes ({tuple(a)} vs {tuple(b)}), "
            "so it has no static shape in a functional model."
        )
    return tuple(x if x == y else None for x, y in zip(a, b))
