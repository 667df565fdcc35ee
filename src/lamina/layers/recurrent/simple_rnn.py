"""SimpleRNN: the fully connected recurrent layer, `h = activation(x W + h U + b)`, as Keras 3."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina import activations
from lamina.layers.recurrent.base import Recurrent, is_activation

__all__ = ["SimpleRNN"]


class SimpleRNN(Recurrent):
    """Fully connected recurrent layer whose output is fed back: `h_t = activation(x_t·kernel +
    h_{t-1}·recurrent_kernel + bias)`, with Keras 3's arguments, defaults and weights.

    With activation "tanh" or "relu", no recurrent dropout in training, and no mask or a mask
    whose valid steps are one run per sample, it runs torch's fused kernel (`torch.rnn_tanh` /
    `torch.rnn_relu`); otherwise a step-by-step loop.

    Args:
        units: size of the output and the state.
        activation: "tanh" by default.
        use_bias: whether to add a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or objects
            ("glorot_uniform", "orthogonal", "zeros").
        kernel_regularizer, recurrent_regularizer, bias_regularizer: "l1", "l2" or objects.
        dropout: fraction of the input features dropped in training, one mask per sequence.
        recurrent_dropout: fraction of the state dropped in training, one mask per sequence.
        seed: seed of the dropout masks.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as for `LSTM`; the only state is `h`.

    Call arguments, input and output shapes: as for `GRU` (one state, `h`).

    Weights (Keras' shapes): kernel (features, units), recurrent_kernel (units, units), bias
    (units,); kept transposed inside, as torch's `weight_ih` and `weight_hh`.

    Example:
        >>> rnn = SimpleRNN(4, return_sequences=True)
        >>> rnn(torch.ones(32, 10, 8)).shape
        torch.Size([32, 10, 4])
    """

    def build_weights(self, input_dim):
        self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer, layout=(1, 0),
                        regularizer=self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (self.units, self.units), self.recurrent_initializer,
                        layout=(1, 0), regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def _fused_kernel(self):
        if is_activation(self.activation, activations.tanh, torch.tanh):
            return torch.rnn_tanh
        if is_activation(self.activation, activations.relu, torch.relu, F.relu):
            return torch.rnn_relu
        return None

    def _step(self, projected_input, states, state_masks):
        (h,) = states
        h = self.activation(projected_input + self._project_state(h, self.recurrent_kernel,
                                                                  state_masks))
        return h, [h]
