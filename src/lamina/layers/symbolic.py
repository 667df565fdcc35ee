"""Symbolic tensors and nodes: what `layers.Input(...)` and a layer called on it return.

A SymbolicTensor carries a shape (batch axis None) and the Node that produced it; a functional
Model walks these nodes back from its outputs to its inputs to find the graph it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lamina.utils.tree import flatten


class SymbolicTensor:
    """A placeholder for a batch of tensors: shape with None for the batch axis, no values."""

    def __init__(self, shape, dtype=torch.float32, node: Node | None = None, name: str | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        layer = self.node.layer.name if self.node else "?"
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype} from layer '{layer}'>"

    def __bool__(self):
        raise TypeError(
            "A symbolic tensor (from layers.Input) has no value, so it cannot be used in a Python "
            "condition. Build the model first, then call it on data."
        )

    def __iter__(self):
        # Without this, Python would iterate through __getitem__ forever.
        raise TypeError(
            "A symbolic tensor cannot be iterated over; index it (x[:, 0]) or use ops.unstack."
        )

    def __getitem__(self, key):
        from lamina import ops

        return ops.get_item(self, ops.numpy._encoded_key(key))

    # Arithmetic and comparisons call the ops, which add a node to the graph (no __eq__, as in
    # Keras: symbolic tensors stay hashable and comparable by identity).
    __hash__ = object.__hash__


def _operator(op_name, reflected=False):
    def method(self, other):
        from lamina import ops

        fn = getattr(ops, op_name)
        return fn(other, self) if reflected else fn(self, other)

    return method


def _unary(op_name):
    def method(self):
        from lamina import ops

        return getattr(ops, op_name)(self)

    return method


for _name, _op in {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
                   "floordiv": "floor_divide", "mod": "mod", "pow": "power", "matmul": "matmul",
                   "and": "logical_and", "or": "logical_or", "xor": "logical_xor"}.items():
    setattr(SymbolicTensor, f"__{_name}__", _operator(_op))
    setattr(SymbolicTensor, f"__r{_name}__", _operator(_op, reflected=True))
for _name, _op in {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
                   "ne": "not_equal"}.items():
    setattr(SymbolicTensor, f"__{_name}__", _operator(_op))
for _name, _op in {"neg": "negative", "abs": "abs", "invert": "logical_not"}.items():
    setattr(SymbolicTensor, f"__{_name}__", _unary(_op))
del _name, _op


@dataclass(eq=False)
class Node:
    """One call of a layer inside a graph: the symbolic arguments in, the symbolic outputs out."""

    layer: object
    args: tuple
    kwargs: dict
    outputs: object
    parents: list = field(default_factory=list)

    def __post_init__(self):
        self.parents = [t.node for t in flatten((self.args, self.kwargs))
                        if isinstance(t, SymbolicTensor) and t.node is not None]


def is_symbolic(structure) -> bool:
    return any(isinstance(t, SymbolicTensor) for t in flatten(structure))
