"""GRU: Gated Recurrent Unit (Cho et al. 2014), as Keras 3's layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina import activations
from lamina.layers.recurrent.base import Recurrent, is_activation

__all__ = ["GRU"]


class GateOrder:
    """Layout of a GRU weight: Keras orders the gate blocks z, r, h along its last axis, torch
    r, z, n; kernels are also transposed to torch's (3·units, in)."""

    order = (1, 0, 2)  # swapping the first two blocks is its own inverse

    def __init__(self, transpose):
        self.transpose = transpose

    def _swap(self, t):
        blocks = t.chunk(3, dim=-1)
        return torch.cat([blocks[i] for i in self.order], dim=-1)

    def from_keras(self, t):
        t = self._swap(t)
        return t.T if self.transpose else t

    def to_keras(self, t):
        return self._swap(t.T if self.transpose else t)


class GRU(Recurrent):
    """Gated Recurrent Unit layer, with Keras 3's arguments, defaults and weights.

    With the default activations, `reset_after=True` (the default, cuDNN's formulation), no
    recurrent dropout in training, and no mask or a mask whose valid steps are one run per
    sample, it runs torch's fused kernel (`torch.gru`); otherwise a step-by-step loop.

    Args (those after `recurrent_activation` are keyword-only):
        units: size of the output and the state.
        activation: activation of the candidate state ("tanh").
        recurrent_activation: activation of the update and reset gates ("sigmoid").
        use_bias: whether the gates have biases.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or objects
            ("glorot_uniform", "orthogonal", "zeros").
        kernel_regularizer, recurrent_regularizer, bias_regularizer: "l1", "l2" or objects.
        dropout: fraction of the input features dropped in training, one mask per sequence.
        recurrent_dropout: fraction of the state dropped in training, one mask per sequence
            (and then one input and one state mask per gate, as Keras).
        reset_after: apply the reset gate after the recurrent matrix product (True, with a
            separate recurrent bias) or before it (False, the original formulation).
        seed: seed of the dropout masks.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as for `LSTM`; the only state is `h`.

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: `h` (batch, units), or a list holding it; zeros by default.
        mask: (batch, timesteps) booleans, False at padding steps (they keep the state and
            repeat the previous output).
        training: whether dropout is on (the layer's mode by default).

    Input shape: (batch, timesteps, features).
    Output shape: (batch, units), or (batch, timesteps, units) with `return_sequences`; with
    `return_state` a tuple `(output, h)`.

    Weights (Keras' shapes): kernel (features, 3·units), recurrent_kernel (units, 3·units),
    bias (2, 3·units) with `reset_after` (input and recurrent biases, torch's `bias_ih` and
    `bias_hh`) or (3·units,) without; gates z, r, h. Inside they are kept in torch's layout and
    gate order r, z, n.

    Example:
        >>> gru = GRU(4, return_state=True)
        >>> output, h = gru(torch.ones(32, 10, 8))
        >>> output.shape
        torch.Size([32, 4])
    """

    gates = 3
    state_names = ("h",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", *,
                 reset_after=True, **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def build_weights(self, input_dim):
        units = self.units
        self.add_weight("kernel", (input_dim, 3 * units), self.kernel_initializer,
                        layout=GateOrder(transpose=True), regularizer=self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (units, 3 * units), self.recurrent_initializer,
                        layout=GateOrder(transpose=True), regularizer=self.recurrent_regularizer)
        if self.use_bias:
            shape = (2, 3 * units) if self.reset_after else (3 * units,)
            self.add_weight("bias", shape, self.bias_initializer, layout=GateOrder(transpose=False),
                            regularizer=self.bias_regularizer)

    def _fused_kernel(self):
        if (self.reset_after and is_activation(self.activation, activations.tanh, torch.tanh)
                and is_activation(self.recurrent_activation, activations.sigmoid, torch.sigmoid)):
            return torch.gru
        return None

    def _fused_params(self):
        if not self.use_bias:
            return [self.kernel, self.recurrent_kernel]
        return [self.kernel, self.recurrent_kernel, self.bias[0], self.bias[1]]

    def _input_bias(self):
        if not self.use_bias:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def _step(self, projected_input, states, state_masks):
        (h,) = states
        x_r, x_z, x_n = projected_input.chunk(3, dim=1)
        units = self.units
        gate = self.recurrent_activation
        if self.reset_after:
            recurrent = self._project_state(h, self.recurrent_kernel, state_masks)
            if self.use_bias:
                recurrent = recurrent + self.bias[1]
            h_r, h_z, h_n = recurrent.chunk(3, dim=1)
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            candidate = self.activation(x_n + r * h_n)
        else:
            reset_update = self._project_state(
                h, self.recurrent_kernel[: 2 * units],
                None if state_masks is None else state_masks[:2])
            h_r, h_z = reset_update.chunk(2, dim=1)
            r, z = gate(x_r + h_r), gate(x_z + h_z)
            h_n = h if state_masks is None else h * state_masks[2]
            candidate = self.activation(x_n + F.linear(r * h_n, self.recurrent_kernel[2 * units:]))
        h = z * h + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }
