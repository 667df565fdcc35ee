"""Bidirectional: one recurrent layer reads the sequence forwards, a copy reads it backwards, and
their outputs are merged, as Keras 3's wrapper."""

from __future__ import annotations

import torch

from lamina.layers.base import Layer
from lamina.layers.recurrent.base import Recurrent
from lamina.layers.recurrent.gru import GRU
from lamina.layers.recurrent.lstm import LSTM
from lamina.layers.recurrent.simple_rnn import SimpleRNN
from lamina.utils.naming import lookup

__all__ = ["Bidirectional"]

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence in both directions and merges the two outputs.

    The forward layer is a fresh copy of `layer` (named "forward_<name>"); the backward one is
    `backward_layer`, or a copy of `layer` with `go_backwards=True` ("backward_<name>"). With
    `return_sequences`, the backward sequence is flipped back to the input's time order before
    merging, and masked steps output zeros (Keras sets `zero_output_for_mask` on both layers).

    Args:
        layer: an `LSTM`, `GRU` or `SimpleRNN` (not itself going backwards).
        merge_mode: "concat" (default), "sum", "mul", "ave", or None to return both outputs as
            a tuple `(forward, backward)`.
        backward_layer: an optional recurrent layer for the backward direction; it must have
            `go_backwards=True` and the same `return_sequences`, `return_state` and `stateful`.

    Call arguments:
        inputs: (batch, timesteps, features).
        initial_state: the forward layer's states followed by the backward layer's
            (e.g. `[h_f, c_f, h_b, c_b]` for an LSTM).
        mask: (batch, timesteps) booleans, False at padding steps.
        training: whether dropout is on; by default each direction follows its own mode.

    Input shape: (batch, timesteps, features).
    Output shape: the wrapped layer's output, with the last axis doubled for "concat"; with
    `return_state`, the merged output followed by the forward then the backward states.

    Weights: the forward layer's, then the backward layer's (Keras' order).

    Example:
        >>> bi = Bidirectional(LSTM(4, return_sequences=True))
        >>> bi(torch.ones(32, 10, 8)).shape
        torch.Size([32, 10, 8])
    """

    supports_masking = True
    resolves_training = False  # each direction keeps its own mode, so predict_mc reaches its dropout

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Recurrent):
            raise ValueError(
                "Bidirectional: `layer` must be a recurrent layer (LSTM, GRU or SimpleRNN). "
                f"Received: layer={layer!r}"
            )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Bidirectional: `merge_mode` must be one of {list(_MERGE_MODES)}. "
                f"Received: merge_mode={merge_mode!r}"
            )
        if backward_layer is not None and not isinstance(backward_layer, Recurrent):
            raise ValueError(
                "Bidirectional: `backward_layer` must be a recurrent layer (LSTM, GRU or "
                f"SimpleRNN). Received: backward_layer={backward_layer!r}"
            )
        # Fresh copies, as Keras: the wrapped layer's own weights and states are not reused.
        config = layer.get_config()
        self.forward_layer = type(layer).from_config(
            {**config, "name": f"forward_{layer.name.removeprefix('forward_')}"})
        if backward_layer is None:
            backward_layer = type(layer).from_config(
                {**config, "go_backwards": True,
                 "name": f"backward_{layer.name.removeprefix('backward_')}"})
        self.backward_layer = backward_layer
        self._check_directions()
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = self.forward_layer.stateful

    def _check_directions(self):
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers must read in opposite directions, "
                f"but both have go_backwards={forward.go_backwards}. Wrap a layer with "
                "go_backwards=False (and give a backward_layer with go_backwards=True)."
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attr) != getattr(backward, attr):
                raise ValueError(
                    f"Bidirectional: the forward and backward layers must agree on `{attr}`; "
                    f"got {getattr(forward, attr)} (forward) and {getattr(backward, attr)} "
                    "(backward)."
                )

    def build(self, input_shape):
        self.forward_layer.build_from_shape(input_shape)
        self.backward_layer.build_from_shape(input_shape)
        self.input_spec = self.forward_layer.input_spec

    def call(self, inputs, initial_state=None, training=None, mask=None):
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            expected = len(self.forward_layer.state_names) + len(self.backward_layer.state_names)
            if len(states) != expected:
                raise ValueError(
                    f"Bidirectional '{self.name}' takes {expected} initial state tensors (the "
                    f"forward layer's, then the backward layer's), but received {len(states)}."
                )
            half = len(self.forward_layer.state_names)
            forward_state, backward_state = states[:half], states[half:]
        y = self.forward_layer(inputs, initial_state=forward_state, training=training, mask=mask)
        y_rev = self.backward_layer(inputs, initial_state=backward_state, training=training,
                                    mask=mask)
        if self.return_state:
            states = (*y[1:], *y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        if self.merge_mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = (y, y_rev)
        if not self.return_state:
            return output
        outputs = output if self.merge_mode is None else (output,)
        if self.return_sequences and mask is not None:
            # The base class would put the mask on the states too: only the sequences get it.
            for sequence in outputs:
                sequence._lamina_mask = mask
        return (*outputs, *states)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = ()
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            shape = (*shape[:-1], 2 * shape[-1])
        outputs = (shape, shape) if self.merge_mode is None else (shape,)
        if self.return_state:
            return (*outputs, *states, *states)
        return outputs if self.merge_mode is None else shape

    passes_masks_only = True

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences and not self.return_state else None

    @property
    def states(self):
        forward, backward = self.forward_layer.states, self.backward_layer.states
        return None if forward is None or backward is None else [*forward, *backward]

    def reset_states(self) -> None:
        """Zero the carried states of both directions (the wrapped layer must be stateful)."""
        if not self.stateful:
            raise AttributeError(
                f"Bidirectional '{self.name}': reset_states() needs a stateful layer; this one "
                "wraps a layer with stateful=False."
            )
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    def get_config(self):
        return {**super().get_config(), "layer": _serialize(self.forward_layer),
                "merge_mode": self.merge_mode, "backward_layer": _serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _deserialize(config["backward_layer"])
        return cls(**config)


_RECURRENT = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


def _serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _deserialize(spec):
    if isinstance(spec, Layer):
        return spec
    return lookup("recurrent layer", spec["class_name"], _RECURRENT).from_config(spec["config"])
