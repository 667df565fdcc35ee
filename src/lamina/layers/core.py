"""Core layers: Dense and Activation."""

from __future__ import annotations

import torch.nn.functional as F

from lamina import activations, initializers, regularizers
from lamina.layers.base import InputSpec, Layer

__all__ = ["Dense", "Activation"]


class Dense(Layer):
    """Fully connected layer: `activation(inputs @ kernel + bias)` on the last axis.

    Args:
        units: size of the output's last axis.
        activation: name or callable; None is linear.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: Keras names or Initializer objects.
        kernel_regularizer, bias_regularizer: "l1", "l2", or Regularizer objects.

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).

    The kernel is (input_dim, units) in `get_weights()`, kept transposed for torch's linear.

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
        y = F.linear(inputs, self.kernel, self.bias if self.use_bias else None)
        return activations.apply(self.activation, y)

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
