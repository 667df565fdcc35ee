"""LSTM: Long Short-Term Memory (Hochreiter & Schmidhuber 1997), as Keras 3's layer."""

from __future__ import annotations

import torch

from lamina import activations, initializers
from lamina.kernels import recurrent
from lamina.layers.recurrent.base import Recurrent, is_activation

__all__ = ["LSTM"]


class LSTM(Recurrent):
    """Long Short-Term Memory layer, with Keras 3's arguments, defaults and weights.

    With the default activations, no recurrent dropout in training, and no mask or a mask whose
    valid steps are one run per sample (left or right padding), it runs torch's fused kernel
    (`torch.lstm`, cuDNN on a GPU); otherwise a step-by-step loop with the same results. At
    inference on the CPU with at most 128 state values per step (e.g. one sequence of 64 units,
    single-sample serving), a compiled loop runs instead; in training on the
    CPU with a multiple of 32 units up to 128 and no mask that leaves steps out, compiled forward
    and backward loops (both operators of `kernels/recurrent.py`).

    Args (those after `recurrent_activation` are keyword-only):
        units: size of the output and of each state.
        activation: activation of the cell candidate and the output ("tanh").
        recurrent_activation: activation of the gates ("sigmoid").
        use_bias: whether the gates have a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or objects
            ("glorot_uniform", "orthogonal", "zeros").
        unit_forget_bias: add 1 to the forget gate's bias at initialization (Jozefowicz et al.).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: "l1", "l2" or objects.
        dropout: fraction of the input features dropped in training, one mask per sequence.
        recurrent_dropout: fraction of the state dropped in training, one mask per sequence
            (and then one input and one state mask per gate, as Keras).
        seed: seed of the dropout masks.
        return_sequences: return the output of every step, not only the last.
        return_state: also return the final states `h` and `c`.
        go_backwards: process the sequence backwards (the returned sequence is reversed too).
        stateful: the final states of a batch are the initial states of the next one, sample by
            sample. They advance in training and in `predict()` (as Keras), but not in
            `evaluate()` nor in `predict(training=True)` / `predict_mc()`; `reset_states()` zeros
            them.
        unroll: accepted for Keras compatibility; it changes nothing.
        zero_output_for_mask: output zeros at masked steps instead of the previous output.

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: `[h, c]`, each (batch, units); zeros by default.
        mask: (batch, timesteps) booleans, False where a step is padding (from `Masking` or
            `Embedding(mask_zero=True)`): a masked step keeps the states and repeats the
            previous output.
        training: whether dropout is on (the layer's mode by default).

    Input shape: (batch, timesteps, features).
    Output shape: (batch, units), or (batch, timesteps, units) with `return_sequences`; with
    `return_state` a tuple `(output, h, c)`, the states (batch, units).

    Weights (`get_weights()`, Keras' shapes): kernel (features, 4·units), recurrent_kernel
    (units, 4·units), bias (4·units,), gates in the order i, f, c, o. Inside they are kept as
    torch's `weight_ih` (4·units, features) and `weight_hh` (4·units, units), whose gate order
    i, f, g, o is the same.

    Example:
        >>> lstm = LSTM(4, return_sequences=True, return_state=True)
        >>> sequence, h, c = lstm(torch.ones(32, 10, 8))
        >>> sequence.shape, h.shape
        (torch.Size([32, 10, 4]), torch.Size([32, 4]))
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", *,
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def build_weights(self, input_dim):
        units = self.units
        self.add_weight("kernel", (input_dim, 4 * units), self.kernel_initializer, layout=(1, 0),
                        regularizer=self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (units, 4 * units), self.recurrent_initializer,
                        layout=(1, 0), regularizer=self.recurrent_regularizer)
        if self.use_bias:
            initializer = self.bias_initializer
            if self.unit_forget_bias:
                initializer = _with_forget_bias_one(initializer)
            self.add_weight("bias", (4 * units,), initializer, regularizer=self.bias_regularizer)

    def _fused_kernel(self):
        if (is_activation(self.activation, activations.tanh, torch.tanh)
                and is_activation(self.recurrent_activation, activations.sigmoid, torch.sigmoid)):
            return torch.lstm
        return None

    def _fused(self, kernel, x, states, batch_sizes=None):
        if batch_sizes is None:  # lamina's operators (packed sequences are torch's alone)
            weights = [self.kernel, self.recurrent_kernel, self.bias if self.use_bias else None]
            return recurrent.lstm(x, weights, states)
        return super()._fused(kernel, x, states, batch_sizes)

    def _step(self, projected_input, states, state_masks):
        h, c = states
        z = projected_input + self._project_state(h, self.recurrent_kernel, state_masks)
        i, f, g, o = z.chunk(4, dim=1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        h = gate(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }


def _with_forget_bias_one(initializer):
    """The bias initializer with the forget gate's block (the second of four) set to ones."""
    initializer = initializers.get(initializer)

    def init(shape, dtype=torch.float32):
        units = shape[0] // 4
        return torch.cat([initializer((units,), dtype), torch.ones(units, dtype=dtype),
                          initializer((2 * units,), dtype)])

    return init
