"""What LSTM, GRU and SimpleRNN share: Keras' RNN arguments, states, masking, dropout, and the
choice between torch's fused kernel and a step-by-step loop.

Each layer keeps its weights in the layout torch's fused kernel (`torch.lstm`, `torch.gru`,
`torch.rnn_tanh`) takes, so the plain configuration runs one fused call with no per-call
reshuffle. A layer supplies that kernel and its parameter list, and one time step (`_step`) on
torch's gate order for what the kernel cannot do: other activations, recurrent dropout, GRU's
`reset_after=False`, and masks that are not one contiguous run of steps per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lamina import activations, initializers, regularizers
from lamina.layers.base import InputSpec, Layer, state_updates_enabled


def is_activation(fn, *candidates) -> bool:
    """Whether `fn` is one of `candidates` (lamina's or torch's function of that name)."""
    return any(fn is c for c in candidates)


class Recurrent(Layer):
    """Base of the recurrent layers (Keras' `RNN` with a built-in cell).

    Subclasses set `gates` (blocks of `units` in the kernels) and `state_names`, create their
    weights in `build_weights(input_dim)`, and implement `_fused_kernel` and `_step`; a layer
    with other biases than one Keras bias also overrides `_fused_params` and `_input_bias`.
    """

    gates = 1
    state_names: tuple[str, ...] = ("h",)
    supports_masking = True

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{kind}: `units` must be a positive int. Received: units={units!r}")
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                raise ValueError(
                    f"{kind}: `{arg}` is the fraction of units to drop and must be in [0, 1). "
                    f"Received: {arg}={rate!r}"
                )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{kind}: `seed` must be an int or None. Received: seed={seed!r}")
        self.units = units
        set_cell_arguments(self, activation, use_bias, kernel_initializer, recurrent_initializer,
                           bias_initializer, kernel_regularizer, recurrent_regularizer,
                           bias_regularizer)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self._generator = None
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)  # accepted for Keras compatibility: torch's loop needs no unrolling
        self.zero_output_for_mask = bool(zero_output_for_mask)
        if self.stateful:
            # Non-persistent buffers: they follow .to(device) but, as in Keras, are not weights
            # and are not saved.
            for name in self._state_buffers:
                self.register_buffer(name, None, persistent=False)

    @property
    def is_dropout(self) -> bool:
        return self.dropout > 0 or self.recurrent_dropout > 0

    @property
    def _state_buffers(self) -> list[str]:
        return [f"state_{name}" for name in self.state_names]

    # ----------------------------------------------------------------- building
    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects input of shape (batch, timesteps, "
                f"features), a 3-D tensor. Received input shape {tuple(input_shape)}."
            )
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the last axis (features) of its input must "
                f"be known to build the kernel. Received input shape {tuple(input_shape)}."
            )
        self.build_weights(input_dim)
        self.input_spec = InputSpec(ndim=3, axes={-1: input_dim})

    def build_weights(self, input_dim):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return (output, *[(batch, self.units) for _ in self.state_names])
        return output

    passes_masks_only = True

    def compute_mask(self, inputs, mask=None):
        # With return_state the sequence output gets the mask in call(): the base class would
        # put one mask on every output, the states included.
        return mask if self.return_sequences and not self.return_state else None

    # ----------------------------------------------------------------- states
    @property
    def states(self) -> list[torch.Tensor] | None:
        """The states a stateful layer carries to its next call (None before the first one)."""
        if not self.stateful or getattr(self, self._state_buffers[0]) is None:
            return None
        return [getattr(self, name) for name in self._state_buffers]

    def reset_states(self) -> None:
        """Set the carried states of a stateful layer to zeros (no effect on other layers)."""
        if self.states is not None:
            # New tensors rather than zero_(): the old ones may still be saved for a backward.
            self._carry_states([torch.zeros_like(s) for s in self.states])

    reset_state = reset_states

    def _initial_states(self, x, initial_state) -> list[torch.Tensor]:
        batch = x.shape[0]
        if initial_state is None:
            carried = self.states
            if carried is None:
                return [x.new_zeros(batch, self.units) for _ in self.state_names]
            if carried[0].shape[0] != batch:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' is stateful: it carries one state per "
                    f"sample of a batch of {carried[0].shape[0]}, but received a batch of {batch}. "
                    "Feed batches of a fixed size (drop or pad the last one), or call "
                    "reset_states() after rebuilding the layer for another batch size."
                )
            return carried
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != len(self.state_names):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' takes {len(self.state_names)} initial state "
                f"tensor(s) ({', '.join(self.state_names)}), but received {len(states)}."
            )
        out = []
        for name, state in zip(self.state_names, states):
            state = torch.as_tensor(state, device=x.device).to(x.dtype)
            if tuple(state.shape) != (batch, self.units):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': initial state '{name}' must have shape "
                    f"(batch, units) = ({batch}, {self.units}). Received shape {tuple(state.shape)}."
                )
            out.append(state)
        return out

    def _carry_states(self, states) -> None:
        # Detached (the next batch does not backpropagate into this one, as Keras), and made
        # ordinary tensors even when computed under inference_mode, so a later training step
        # can use them.
        with torch.inference_mode(False):
            for name, state in zip(self._state_buffers, states):
                setattr(self, name, state.detach().clone())

    # ----------------------------------------------------------------- dropout
    def _dropout_masks(self, x, training):
        """Keras' masks, drawn once per sequence: (count, batch, features) for the inputs and
        (count, batch, units) for the state, count being one per gate with recurrent dropout."""
        if not training or not self.is_dropout:
            return None, None
        count = self.gates if self.recurrent_dropout else 1
        batch = x.shape[0]
        inputs = self._draw_mask((count, batch, x.shape[-1]), self.dropout, x)
        state = self._draw_mask((count, batch, self.units), self.recurrent_dropout, x)
        return inputs, state

    def _draw_mask(self, shape, rate, like):
        if not rate:
            return None
        if self.seed is not None and (self._generator is None or self._generator.device != like.device):
            self._generator = torch.Generator(device=like.device).manual_seed(self.seed)
        keep = 1.0 - rate
        mask = torch.empty(shape, dtype=like.dtype, device=like.device)
        return mask.bernoulli_(keep, generator=self._generator if self.seed is not None else None) / keep

    # ----------------------------------------------------------------- running
    def call(self, inputs, initial_state=None, training=None, mask=None):
        x = inputs.to(self.kernel.dtype)
        if x.shape[1] == 0:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' received a sequence of 0 timesteps "
                f"(input shape {tuple(inputs.shape)}); it needs at least one."
            )
        states = self._initial_states(x, initial_state)
        step_mask = None if mask is None else self._check_mask(mask, x)
        if self.go_backwards:
            x = x.flip(1)
            step_mask = None if step_mask is None else step_mask.flip(1)
        input_masks, state_masks = self._dropout_masks(x, training)
        sequence, states = self._run(x, states, step_mask, input_masks, state_masks)
        if self.stateful and state_updates_enabled():
            self._carry_states(states)
        if self.return_sequences:
            output = sequence
        elif step_mask is None:
            # Unmasked, the last output is the final h: taken from the states, the backward pass
            # gets no gradient for the whole sequence (which it would fill with zeros and copy
            # to the fused kernel's time-major layout: ~70 us a step of the LSTM bench).
            output = states[0]
        else:
            output = sequence[:, -1]
        if not self.return_state:
            return output
        if self.return_sequences and mask is not None:
            output._lamina_mask = mask
        return (output, *states)

    def _check_mask(self, mask, x):
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the mask must have shape (batch, timesteps) "
                f"= {tuple(x.shape[:2])}, one flag per time step. Received shape {tuple(mask.shape)}."
            )
        return mask.to(device=x.device, dtype=torch.bool)

    def _run(self, x, states, mask, input_masks, state_masks):
        """(outputs of every step (batch, timesteps, units), final states), in processing order."""
        # torch's fused RNN functions have no vmap rule: under a functorch transform (vmap, grad,
        # jacrev) the layer runs its per-step formula, which every transform handles.
        fusable = state_masks is None and not torch._C._are_functorch_transforms_active()
        kernel = self._fused_kernel() if fusable else None
        if kernel is not None:
            if input_masks is not None:
                x = x * input_masks[0].unsqueeze(1)
            if mask is None:
                return self._fused(kernel, x, states)
            runs = _contiguous_runs(mask)
            if runs is not None:
                starts, counts = runs
                if bool((counts == x.shape[1]).all()):
                    return self._fused(kernel, x, states)
                return self._fused_runs(kernel, x, states, starts, counts)
            input_masks = None  # already applied to x
        return self._loop(x, states, mask, input_masks, state_masks)

    def _fused(self, kernel, x, states, batch_sizes=None):
        """One call of torch's fused kernel, on a batch-first tensor or packed data."""
        hx = [s.unsqueeze(0) for s in states]
        hx = hx if len(hx) > 1 else hx[0]
        head = (x, hx) if batch_sizes is None else (x, batch_sizes, hx)
        # train=True whenever gradients are wanted: cuDNN has no backward for its inference mode.
        tail = (self._fused_params(), self.use_bias, 1, 0.0, torch.is_grad_enabled(), False)
        if batch_sizes is None:
            tail += (True,)  # batch_first
        outputs, *final = kernel(*head, *tail)
        return outputs, [f.squeeze(0) for f in final]

    def _fused_runs(self, kernel, x, states, starts, counts):
        """Masked sequences whose valid steps are one run each (left or right padding): the runs
        are packed for the fused kernel, then the outputs are put back where Keras has them —
        zeros before a run, the run's last output after it (zeros with zero_output_for_mask)."""
        steps = torch.arange(x.shape[1], device=x.device)
        gather = (steps + starts.unsqueeze(1)).clamp(max=x.shape[1] - 1)
        aligned = x.gather(1, gather.unsqueeze(-1).expand_as(x))
        # A sequence with no valid step runs one step and is then set back below.
        packed = pack_padded_sequence(aligned, counts.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        sorted_states = [s.index_select(0, packed.sorted_indices) for s in states]
        data, final = self._fused(kernel, packed.data, sorted_states, packed.batch_sizes)
        outputs, _ = pad_packed_sequence(
            PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
            batch_first=True, total_length=x.shape[1])
        final = [f.index_select(0, packed.unsorted_indices) for f in final]

        has_steps = counts > 0
        offset = steps - starts.unsqueeze(1)
        source = torch.minimum(offset.clamp(min=0), (counts - 1).clamp(min=0).unsqueeze(1))
        sequence = outputs.gather(1, source.unsqueeze(-1).expand(-1, -1, outputs.shape[-1]))
        keep = (offset >= 0) & has_steps.unsqueeze(1)
        if self.zero_output_for_mask:
            keep &= offset < counts.unsqueeze(1)
        sequence = sequence.masked_fill(~keep.unsqueeze(-1), 0.0)
        final = [torch.where(has_steps.unsqueeze(1), f, s) for f, s in zip(final, states)]
        return sequence, final

    def _loop(self, x, states, mask, input_masks, state_masks):
        """Step by step, Keras' semantics: a masked step keeps the states and repeats the previous
        output (zeros with zero_output_for_mask)."""
        projected = self._project_inputs(x, input_masks)
        zeros = x.new_zeros(x.shape[0], self.units)
        output, outputs = zeros, []
        for t in range(x.shape[1]):
            h, new_states = self._step(projected[:, t], states, state_masks)
            if mask is None:
                states, output = new_states, h
            else:
                valid = mask[:, t].unsqueeze(1)
                states = [torch.where(valid, n, s) for n, s in zip(new_states, states)]
                output = torch.where(valid, h, zeros if self.zero_output_for_mask else output)
            outputs.append(output)
        return torch.stack(outputs, 1), states

    def _project_inputs(self, x, masks):
        """x @ kernel + input bias for every step at once: (batch, timesteps, gates * units)."""
        if masks is None or masks.shape[0] == 1:
            x = x if masks is None else x * masks[0].unsqueeze(1)
            return F.linear(x, self.kernel, self._input_bias())
        # One dropout mask per gate: (batch, time, gate, in) times each gate's block of the kernel.
        dropped = x.unsqueeze(2) * masks.permute(1, 0, 2).unsqueeze(1)
        kernel = self.kernel.view(self.gates, self.units, -1)
        projected = torch.einsum("btgi,gui->btgu", dropped, kernel).flatten(2)
        bias = self._input_bias()
        return projected if bias is None else projected + bias

    @staticmethod
    def _project_state(h, kernel, masks):
        """h @ recurrent kernel (torch layout (gates * units, units)), with one dropout mask per
        gate when `masks` (gates, batch, units) is given."""
        if masks is None:
            return F.linear(h, kernel)
        gates = masks.shape[0]
        blocks = kernel.view(gates, -1, h.shape[-1])
        return torch.einsum("gbj,guj->bgu", masks * h, blocks).flatten(1)

    # ----------------------------------------------------------------- per layer
    def _fused_kernel(self):
        """torch's fused function for this configuration, or None when it does not apply."""
        raise NotImplementedError

    def _fused_params(self) -> list[torch.Tensor]:
        """The weights in the order the fused kernel takes them (here: one Keras bias)."""
        if not self.use_bias:
            return [self.kernel, self.recurrent_kernel]
        # torch adds a second, recurrent bias; Keras has one, so that one is zero.
        return [self.kernel, self.recurrent_kernel, self.bias, torch.zeros_like(self.bias)]

    def _input_bias(self):
        """The bias added to the input projection (here: the layer's only bias)."""
        return self.bias if self.use_bias else None

    def _step(self, projected_input, states, state_masks):
        """One time step: (output, new states) from the projected input and the states."""
        raise NotImplementedError

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {
            **super().get_config(), **cell_config(self),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


def set_cell_arguments(layer, activation, use_bias, kernel_initializer, recurrent_initializer,
                       bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer):
    """The arguments a recurrent layer and its cell share, resolved (`cell_config` writes them)."""
    layer.activation = activations.get(activation)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.recurrent_initializer = initializers.get(recurrent_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.recurrent_regularizer = regularizers.get(recurrent_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)


def cell_config(layer) -> dict:
    """The config entries a recurrent layer and its cell share (Keras' names)."""
    return {
        "units": layer.units, "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "recurrent_initializer": initializers.serialize(layer.recurrent_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "recurrent_regularizer": regularizers.serialize(layer.recurrent_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer), "seed": layer.seed,
    }


def _contiguous_runs(mask):
    """(first valid step, number of valid steps) per sample when each sample's valid steps form
    one contiguous run; None otherwise."""
    counts = mask.sum(1)
    starts = mask.to(torch.uint8).argmax(1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    offset = steps - starts.unsqueeze(1)
    expected = (offset >= 0) & (offset < counts.unsqueeze(1))
    return (starts, counts) if bool((expected == mask).all()) else None
