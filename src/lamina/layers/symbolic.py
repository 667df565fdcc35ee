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
