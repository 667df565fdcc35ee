"""Input: the entry point of a functional model or a Sequential."""

from __future__ import annotations

from lamina.layers.base import Layer, _torch_dtype
from lamina.layers.symbolic import Node, SymbolicTensor


class InputLayer(Layer):
    """Holds the shape of a model input; calling a model feeds data where it stands.

    Args:
        shape: the input's shape without the batch axis (ints or None).
        batch_size: the fixed batch size, or None.
        dtype: the input's dtype ("float32" by default).
        batch_shape: the shape with the batch axis, instead of `shape` and `batch_size`.
        sparse, ragged: Keras' flags; lamina's inputs are dense, so only False is accepted.
        optional: accepted for Keras configs; only False is supported.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None,
                 sparse=False, ragged=False, optional=False, **kwargs):
        super().__init__(name=name, **kwargs)
        if batch_shape is not None:
            if shape is not None or batch_size is not None:
                raise ValueError(
                    "Input takes either `shape` (and `batch_size`) or `batch_shape`, not both. "
                    f"Received: shape={shape}, batch_size={batch_size}, batch_shape={batch_shape}"
                )
            batch_shape = tuple(batch_shape)
            if not batch_shape:
                raise ValueError("Input `batch_shape` needs the batch axis first, e.g. (None, 3).")
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("Input needs a `shape` (without the batch axis), e.g. Input((150, 1)).")
        for flag, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(
                    f"Input: lamina's inputs are dense torch tensors; `{flag}=True` is not "
                    f"supported. Received: {flag}={value!r}"
                )
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
        output = SymbolicTensor((batch_size, *shape), self.input_dtype, name=self.name)
        output.node = Node(self, (), {}, output)
        self._inbound_nodes = [output.node]
        self.built = True

    @property
    def batch_shape(self) -> tuple:
        return (self.batch_size, *self.shape)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"shape": self.shape, "batch_size": self.batch_size, "name": self.name,
                "dtype": str(self.input_dtype).removeprefix("torch.")}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,  # noqa: N802
          tensor=None, optional=False):
    """A symbolic input, as `keras.Input`: `shape` without the batch axis, or `batch_shape`
    with it.

    Example:
        >>> x = Input((150, 1))
        >>> x.shape
        (None, 150, 1)
        >>> Input(batch_shape=(32, 10)).shape
        (32, 10)
    """
    if tensor is not None:
        raise ValueError("Input: `tensor=` (wrapping an existing tensor) is not supported by lamina.")
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape, sparse=bool(sparse), optional=optional).output


__all__ = ["Input", "InputLayer"]
