"""Input: the entry point of a functional model or a Sequential."""

from __future__ import annotations

from lamina.layers.base import Layer, _torch_dtype
from lamina.layers.symbolic import Node, SymbolicTensor


class InputLayer(Layer):
    """Holds the shape of a model input; calling a model feeds data where it stands."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if shape is None:
            raise ValueError("Input needs a `shape` (without the batch axis), e.g. Input((150, 1)).")
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
            raise ValueError(
                f"Input `shape` must hold positive ints or None (without the batch axis). "
                f"Received: shape={shape}"
            )
        self.shape = shape
        self.batch_size = batch_size
        self.input_dtype = _torch_dtype(dtype)
        self.output = SymbolicTensor((batch_size, *shape), self.input_dtype, name=self.name)
        self.output.node = Node(self, (), {}, self.output)
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"shape": self.shape, "batch_size": self.batch_size, "name": self.name,
                "dtype": str(self.input_dtype).removeprefix("torch.")}


def Input(shape=None, batch_size=None, dtype=None, name=None):  # noqa: N802 (Keras' name)
    """A symbolic input of the given shape (batch axis excluded), as `keras.Input`.

    Example:
        >>> x = Input((150, 1))
        >>> x.shape
        (None, 150, 1)
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output


__all__ = ["Input", "InputLayer"]
