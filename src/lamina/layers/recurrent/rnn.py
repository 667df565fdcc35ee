"""RNN: runs a user's cell over the time axis, with Keras 3's cell protocol.

A cell is a layer with `state_size` (an int, or a list of ints: one per state), optionally
`output_size` (default: the first state's size) and `get_initial_state(batch_size)`, whose
`call(inputs, states)` takes one time step (batch, features) and the list of states and returns
`(output, new_states)`.
"""

from __future__ import annotations

import torch

from lamina.layers.base import Layer

__all__ = ["RNN", "StackedRNNCells"]


class RNN(Layer):
    """Runs `cell` over the time axis of (batch, timesteps, features) inputs, as `keras.layers.RNN`.

    Args:
        cell: a layer following Keras' cell protocol (see the module's docstring).
        return_sequences: return the output of every step (batch, timesteps, output_size)
            rather than the last one (batch, output_size).
        return_state: also return the final states, after the output.
        go_backwards: read the sequence from its end; the outputs are in that order.
        stateful: not supported with a custom cell (an error says so).
        unroll: accepted for Keras compatibility (the loop is Python's either way).
        zero_output_for_mask: masked steps output zeros instead of repeating the last output.

    Call arguments:
        sequences: (batch, timesteps, features). initial_state: a tensor or list of tensors.
        mask: (batch, timesteps) booleans, by default the mask the input carries; a masked step
            keeps the states and repeats the previous output.
        training: passed to the cell when its call takes it.

    Example:
        >>> class MinimalCell(layers.Layer):
        ...     def __init__(self, units, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.units = self.state_size = units
        ...     def build(self, input_shape):
        ...         self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        ...     def call(self, inputs, states):
        ...         output = inputs @ self.kernel + states[0]
        ...         return output, [output]
        >>> RNN(MinimalCell(4))(torch.ones(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    supports_masking = True
    passes_masks_only = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if not callable(getattr(cell, "call", None)):
            raise ValueError(f"RNN '{self.name}': `cell` needs a `call` method. Received: cell={cell!r}")
        state_size = getattr(cell, "state_size", None)
        if not (isinstance(state_size, int) or isinstance(state_size, (list, tuple))
                and all(isinstance(s, int) for s in state_size)):
            raise ValueError(
                f"RNN '{self.name}': the cell's `state_size` must be an int or a list of ints (one "
                f"per state). Received: state_size={state_size!r}"
            )
        if stateful:
            raise ValueError(
                f"RNN '{self.name}': stateful=True is not supported with a custom cell; use the "
                "built-in LSTM, GRU or SimpleRNN for stateful models."
            )
        self.cell = cell
        self.state_size = [state_size] if isinstance(state_size, int) else list(state_size)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = False
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)

    @property
    def output_size(self) -> int:
        size = getattr(self.cell, "output_size", None)
        return self.state_size[0] if size is None else size

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) < 3:
            raise ValueError(
                f"RNN '{self.name}' expects input of shape (batch, timesteps, features). "
                f"Received input shape {tuple(sequences_shape)}."
            )
        step_shape = (sequences_shape[0], *sequences_shape[2:])
        if isinstance(self.cell, Layer):
            self.cell.build_from_shape(step_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch = sequences_shape[0]
        output = ((batch, sequences_shape[1], self.output_size) if self.return_sequences
                  else (batch, self.output_size))
        if self.return_state:
            return (output, *self._per_cell([(batch, size) for size in self.state_size]))
        return output

    def _per_cell(self, states) -> list:
        """The final states as Keras returns them: one list per cell of a stack of cells."""
        return self.cell.per_cell(states) if isinstance(self.cell, StackedRNNCells) else states

    def compute_mask(self, inputs, mask=None):
        # With return_state the output's mask is set in call: here it would reach the states.
        return mask if self.return_sequences and not self.return_state else None

    def get_initial_state(self, batch_size):
        make = getattr(self.cell, "get_initial_state", None)
        if make is None:
            dtype = getattr(self.cell, "compute_dtype", torch.float32)
            return [torch.zeros(batch_size, size, dtype=dtype) for size in self.state_size]
        states = make(batch_size=batch_size)
        return list(states) if isinstance(states, (list, tuple)) else [states]

    def call(self, sequences, initial_state=None, mask=None, training=None):
        batch, steps = sequences.shape[0], sequences.shape[1]
        if initial_state is None:
            states = [s.to(sequences.device) for s in self.get_initial_state(batch)]
        else:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != len(self.state_size):
                raise ValueError(
                    f"RNN '{self.name}': the cell has {len(self.state_size)} state(s), but "
                    f"initial_state holds {len(states)}."
                )
        x, step_mask = sequences, mask
        if self.go_backwards:
            x = x.flip(1)
            step_mask = None if mask is None else mask.flip(1)
        cell_kwargs = {} if training is None else {"training": training}
        output, outputs = None, []
        for t in range(steps):
            new_output, new_states = self.cell(x[:, t], states, **cell_kwargs)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
            if step_mask is None:
                output, states = new_output, new_states
            else:
                valid = step_mask[:, t].to(torch.bool).unsqueeze(-1)
                previous = (torch.zeros_like(new_output) if output is None or self.zero_output_for_mask
                            else output)
                output = torch.where(valid, new_output, previous)
                states = [torch.where(valid, n, s) for n, s in zip(new_states, states)]
            outputs.append(output)
        result = torch.stack(outputs, 1) if self.return_sequences else output
        if not self.return_state:
            return result
        if self.return_sequences and mask is not None:
            result._lamina_mask = mask
        return (result, *self._per_cell(states))

    def get_config(self):
        from lamina.saving.config import serialize  # saving imports the layers: import late

        return {**super().get_config(), "cell": serialize(self.cell),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config):
        from lamina.saving.config import deserialize

        return cls(**{**config, "cell": deserialize(config["cell"])})


class StackedRNNCells(Layer):
    """Several cells as one (Keras' `StackedRNNCells`; `RNN([cell_1, cell_2])` makes one): each
    step's output of a cell is the next cell's input. The states are all the cells' states in
    order, as one flat list; the output is the last cell's.

    Args:
        cells: the cells, each following the cell protocol (see the module's docstring).
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        cells = list(cells)
        if not cells:
            raise ValueError("StackedRNNCells: `cells` must hold at least one cell.")
        self.cells = torch.nn.ModuleList(cells)
        self._state_counts = [len(_state_sizes(c)) for c in cells]

    @property
    def state_size(self) -> list:
        return [size for cell in self.cells for size in _state_sizes(cell)]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def build(self, input_shape):
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer):
                cell.build_from_shape(shape)
            shape = (shape[0], _output_size(cell))

    def get_initial_state(self, batch_size):
        states = []
        for cell in self.cells:
            make = getattr(cell, "get_initial_state", None)
            made = (make(batch_size=batch_size) if make is not None else
                    [torch.zeros(batch_size, size) for size in _state_sizes(cell)])
            states += list(made) if isinstance(made, (list, tuple)) else [made]
        return states

    def call(self, inputs, states, training=None):
        kwargs = {} if training is None else {"training": training}
        new_states, start = [], 0
        for cell, count in zip(self.cells, self._state_counts):
            inputs, cell_states = cell(inputs, list(states[start:start + count]), **kwargs)
            new_states += list(cell_states) if isinstance(cell_states, (list, tuple)) else [cell_states]
            start += count
        return inputs, new_states

    def per_cell(self, states) -> list:
        """The flat states grouped into one list per cell."""
        grouped, start = [], 0
        for count in self._state_counts:
            grouped.append(list(states[start:start + count]))
            start += count
        return grouped

    def get_config(self):
        from lamina.saving.config import serialize  # saving imports the layers: import late

        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config):
        from lamina.saving.config import deserialize

        return cls(**{**config, "cells": [deserialize(c) for c in config["cells"]]})


def _state_sizes(cell) -> list:
    size = cell.state_size
    return [size] if isinstance(size, int) else list(size)


def _output_size(cell) -> int:
    size = getattr(cell, "output_size", None)
    return _state_sizes(cell)[0] if size is None else size
