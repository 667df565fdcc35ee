"""SimpleRNNCell, LSTMCell and GRUCell: one time step of Keras' built-in recurrences, for
`layers.RNN(cell)`, with Keras 3's weights (kernel (features, gates * units), recurrent_kernel
(units, gates * units), bias) kept in Keras' own layout.

The layers LSTM, GRU and SimpleRNN run the same mathematics over whole sequences with torch's
fused kernels; a cell is the step-by-step form Keras' RNN guide wraps in `RNN`.
"""

from __future__ import annotations

from lamina import activations
from lamina.layers.base import Layer
from lamina.layers.conv import positive_int
from lamina.layers.recurrent.base import cell_config, set_cell_arguments
from lamina.layers.recurrent.lstm import _with_forget_bias_one

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell"]


class _Cell(Layer):
    """Keras' cell arguments; subclasses set `gates` and `_bias_shape`, and implement `call`."""

    gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if dropout or recurrent_dropout:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': dropout in a cell is not supported by "
                "lamina yet; use the LSTM, GRU or SimpleRNN layer's dropout arguments instead."
            )
        self.units = positive_int(self, units, "units")
        set_cell_arguments(self, activation, use_bias, kernel_initializer, recurrent_initializer,
                           bias_initializer, kernel_regularizer, recurrent_regularizer,
                           bias_regularizer)
        self.dropout, self.recurrent_dropout, self.seed = 0.0, 0.0, seed

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        width = self.gates * self.units
        self.add_weight("kernel", (input_shape[-1], width), self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                            regularizer=self.bias_regularizer)

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def _project(self, inputs):
        x = inputs @ self.kernel
        return x + self.bias if self.use_bias else x

    def get_config(self):
        return {**super().get_config(), **cell_config(self)}


def _first(states):
    return states[0] if isinstance(states, (list, tuple)) else states


class SimpleRNNCell(_Cell):
    """One step of SimpleRNN: `h = activation(x·kernel + h·recurrent_kernel + bias)`.

    Example:
        >>> rnn = RNN(SimpleRNNCell(4), return_sequences=True)
        >>> rnn(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """

    def call(self, inputs, states, training=None):
        h = self.activation(self._project(inputs) + _first(states) @ self.recurrent_kernel)
        return h, [h]


class LSTMCell(_Cell):
    """One step of LSTM, Keras' gate order i, f, c, o, one bias (the forget block starts at 1
    with unit_forget_bias). States: [h, c].

    Args (beyond SimpleRNNCell's): recurrent_activation ("sigmoid"), unit_forget_bias (True).
    """

    gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        return _with_forget_bias_one(self.bias_initializer) if self.unit_forget_bias \
            else self.bias_initializer

    def call(self, inputs, states, training=None):
        h, c = states
        i, f, candidate, o = (self._project(inputs) + h @ self.recurrent_kernel).chunk(4, dim=-1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(candidate)
        h = gate(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRUCell(_Cell):
    """One step of GRU, Keras' gate order z, r, h. With reset_after (the default, cuDNN's form)
    the bias is (2, 3 * units): one for the inputs, one for the recurrent projection.

    Args (beyond SimpleRNNCell's): recurrent_activation ("sigmoid"), reset_after (True).
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                 **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=None):
        h = _first(states)
        x = inputs @ self.kernel
        recurrent = h @ self.recurrent_kernel if self.reset_after else None
        if self.use_bias:
            x = x + (self.bias[0] if self.reset_after else self.bias)
            recurrent = recurrent + self.bias[1] if self.reset_after else None
        x_z, x_r, x_h = x.chunk(3, dim=-1)
        if self.reset_after:
            r_z, r_r, r_h = recurrent.chunk(3, dim=-1)
        else:
            r_z, r_r = (h @ self.recurrent_kernel[:, :2 * self.units]).chunk(2, dim=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        if self.reset_after:
            candidate = self.activation(x_h + r * r_h)
        else:
            candidate = self.activation(x_h + (r * h) @ self.recurrent_kernel[:, 2 * self.units:])
        h = z * h + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}
