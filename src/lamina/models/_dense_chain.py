"""Consecutive Dense layers of a Sequential's inference plan as one step.

A Sequential's inference plan (sequential.py) calls each layer's `call` in turn. Where two or more
Dense layers follow each other (dropout layers between them drop out of an inference plan), the
plan holds one `DenseChain` for them instead: with no gradient wanted, the whole run is one
operator call (`kernels/linear.dense_chain`: one call from Python, and one compiled call with one
parallel region on a few float32 rows where that pays), which on a single sample removes most of
what each layer's call from Python costs. Under autocast, a graph capture or a functorch
transform the layers' own calls run, one after another.

Every layer but the last must have a plain ReLU or no activation (the loop applies them); the
last may have any, applied after the loop as its own `call` would. The runs are found when the
plan is made, of the Dense layers whose every option the chain declares (`_fusable.py`); the
activations are checked again on every call.
"""

from __future__ import annotations

import torch

from lamina import _native, activations
from lamina.kernels import linear as _linear_kernels
from lamina.layers.core import Dense
from lamina.models import _fusable

_IN_LOOP = (activations.relu, activations.linear)

# The Dense options the chain computes, at inference: a regularizer changes nothing there, and the
# activation is read on every call.
DECLARED = {Dense: _fusable.fields("units", "activation", "use_bias", "kernel_initializer",
                                   "bias_initializer", "kernel_regularizer", "bias_regularizer")}


def chainable(layer) -> bool:
    """A built Dense layer whose every option the chain computes."""
    return layer.built and _fusable.accepts(layer, DECLARED)


def group(layers) -> list:
    """`layers` as runs: each run of two or more chainable layers (every one but the last with an
    activation the loop applies) becomes one DenseChain, any other layer stays itself."""
    out, run = [], []

    def close():
        out.extend([DenseChain(run)] if len(run) > 1 else run)
        run.clear()

    for layer in layers:
        if chainable(layer):
            run.append(layer)
            if layer.activation not in _IN_LOOP:
                close()  # this activation ends the run: the loop cannot apply it mid-way
        else:
            close()
            out.append(layer)
    close()
    return out


class DenseChain:
    def __init__(self, layers):
        self.layers = list(layers)

    def __call__(self, x):
        found = self._weights(x)
        if found is None:
            for layer in self.layers:
                x = layer.call(x)
            return x
        y = _linear_kernels.dense_chain(x, *found)
        last = self.layers[-1].activation
        return y if last in _IN_LOOP else activations.apply(last, y)

    def _weights(self, x):
        """(kernels, biases, ReLU flags) when the chain applies to this call, else None (a
        gradient wanted, autocast on x's device, a graph capture or a functorch transform). The
        activations are read on every call: Keras users set them after building (a softmax
        output's `activation = None` for its logits), and the chain must follow."""
        if torch.is_grad_enabled() or not _native.eager(lowered_on=x.device.type):
            return None
        kernels, biases, relus = [], [], []
        for position, layer in enumerate(self.layers, 1):
            if layer.activation not in _IN_LOOP and position < len(self.layers):
                return None
            relus.append(layer.activation is activations.relu)
            params = layer._parameters  # not the attributes: Module.__getattr__ costs per lookup
            kernels.append(params["kernel"])
            biases.append(params.get("bias") if layer.use_bias else None)
        return kernels, biases, relus
