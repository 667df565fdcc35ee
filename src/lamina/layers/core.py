"""Core layers: Dense, Activation, Embedding, Masking and Lambda."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from lamina import activations, initializers, regularizers
from lamina.kernels.linear import linear
from lamina.layers.base import InputSpec, Layer
from lamina.utils import tree

__all__ = ["Dense", "Activation", "Embedding", "Masking", "Lambda"]


class Dense(Layer):
    """Fully connected layer: `activation(inputs @ kernel + bias)` on the last axis.

    Args:
        units: size of the output's last axis.
        activation: name or callable; None is linear.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: Keras names or Initializer objects.
        kernel_regularizer, bias_regularizer: "l1", "l2", or Regularizer objects.

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).

    The kernel is (input_dim, units) in `get_weights()`, kept transposed for torch's linear. On
    x86 CPUs, float32 products of at least 2M multiply-adds run oneDNN's matmul instead of
    torch's BLAS call, forward and backward; a few rows against a large kernel run a compiled
    matrix-vector loop (both inside the operator `lamina::linear`, `kernels/linear.py`).

    Example:
        >>> layer = Dense(3, activation="relu")
        >>> layer(torch.ones(2, 4)).shape
        torch.Size([2, 3])
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense: `units` must be a positive int. Received: units={units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(
                f"Dense '{self.name}': the last axis of its input must be known to build the "
                f"kernel. Received input shape {tuple(input_shape)}."
            )
        self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer, layout=(1, 0),
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_dim})

    def call(self, inputs):
        bias = self.bias if self.use_bias else None
        if self.activation is activations.relu:  # folded into the product where it can be
            return linear(inputs, self.kernel, bias, relu=True)
        return activations.apply(self.activation, linear(inputs, self.kernel, bias))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Activation(Layer):
    """Applies an activation function: `Activation("relu")`."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return activations.apply(self.activation, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Embedding(Layer):
    """Turns integer indices into dense vectors: row `i` of an (input_dim, output_dim) table.

    Args:
        input_dim: size of the vocabulary; indices must lie in [0, input_dim).
        output_dim: size of each vector.
        embeddings_initializer: Keras name or Initializer for the table ("uniform": U(-0.05, 0.05)).
        embeddings_regularizer: "l1", "l2" or a Regularizer object.
        mask_zero: whether index 0 is padding; the layer then outputs a mask (False where the
            index is 0) that masking-aware layers downstream (RNNs, merges, pooling) honour, so
            the vocabulary's real entries start at 1.

    Input shape: integer tensor (batch, ...). Output shape: (batch, ..., output_dim).

    Example:
        >>> layer = Embedding(10, 4, mask_zero=True)
        >>> layer(torch.tensor([[3, 1, 0]])).shape
        torch.Size([1, 3, 4])
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Embedding: `{arg}` must be a positive int. Received: {arg}={value!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape):
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer)

    def call(self, inputs):
        indices = inputs.long() if inputs.is_floating_point() else inputs  # Keras truncates floats
        if indices.numel():
            # One check up front: torch's own error is a bare "index out of range in self" on CPU
            # and an unrecoverable device-side assert on CUDA.
            low, high = torch.stack(torch.aminmax(indices)).tolist()
            if low < 0 or high >= self.input_dim:
                bad = low if low < 0 else high
                raise ValueError(
                    f"Embedding '{self.name}': index {bad} is out of range for input_dim="
                    f"{self.input_dim}; indices must lie in [0, {self.input_dim - 1}]. Raise "
                    "input_dim to the vocabulary size (+1 when 0 is reserved for padding)."
                )
        return F.embedding(indices, self.embeddings)

    def compute_mask(self, inputs, mask=None):
        return inputs != 0 if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def _output_dtype(self, input_dtype):
        return self.compute_dtype

    def get_config(self):
        return {
            **super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "mask_zero": self.mask_zero,
        }


class Masking(Layer):
    """Masks timesteps whose features all equal `mask_value`, so that masking-aware layers
    downstream (RNNs, merges, pooling) skip them; those timesteps are also set to 0.

    Args:
        mask_value: the padding value (default 0.0).

    Input shape: (batch, timesteps, features) or any rank >= 2. Output shape: the input's; its
    mask has shape (batch, timesteps): True where any feature differs from `mask_value`.

    Example:
        >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
        >>> Masking()(x)._lamina_mask
        tensor([[ True, False]])
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def call(self, inputs):
        return torch.where(self.compute_mask(inputs).unsqueeze(-1), inputs, 0)

    def compute_mask(self, inputs, mask=None):
        return (inputs != self.mask_value).any(dim=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


def _accepts(function, name) -> bool:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


class Lambda(Layer):
    """Wraps a function of tensors as a layer: `Lambda(lambda x: x ** 2)`.

    The function gets `training` and `mask` keyword arguments when its signature asks for them.
    It should have no weights of its own (for that, subclass Layer).

    Args:
        function: callable applied to the inputs.
        output_shape: the output shape without the batch axis (a tuple, or a structure of them
            for several outputs), or a callable from the input shape (with batch axis) to the
            output shape. When None it is found by running the function on zeros.
        mask: None (no output mask), a fixed mask, or a callable `mask(inputs, previous_mask)`.
        arguments: optional dict of extra keyword arguments for `function`.

    Input shape: whatever `function` takes. Output shape: what it returns.

    Example:
        >>> Lambda(lambda x, k: x * k, arguments={"k": 3})(torch.ones(2, 2)).tolist()
        [[3.0, 3.0], [3.0, 3.0]]
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: `function` must be callable. Received: function={function!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda: `arguments` must be a dict. Received: arguments={arguments!r}")
        self.function = function
        self._output_shape = tuple(output_shape) if tree.is_shape(output_shape) else output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        self._passes_training = _accepts(function, "training")
        self._passes_mask = _accepts(function, "mask")

    def call(self, inputs, training=None, mask=None):
        kwargs = dict(self.arguments)
        if self._passes_training:
            kwargs["training"] = training
        if self._passes_mask:
            kwargs["mask"] = mask
        return self.function(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        if self._output_shape is not None:
            batch = tree.flatten(input_shape)[0]
            return tree.map_shapes(lambda shape: (batch, *shape), self._output_shape)
        try:
            return super().compute_output_shape(input_shape)
        except Exception as error:
            raise ValueError(
                f"Lambda '{self.name}': could not infer its output shape by running the function "
                f"on zeros of input shape {input_shape} ({type(error).__name__}: {error}). Pass "
                "`output_shape` (without the batch axis)."
            ) from error

    def compute_mask(self, inputs, mask=None):
        return self.mask(inputs, mask) if callable(self.mask) else self.mask

    def get_config(self):
        return {
            **super().get_config(), "function": self.function, "output_shape": self._output_shape,
            "mask": self.mask, "arguments": self.arguments,
        }
