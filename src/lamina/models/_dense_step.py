"""The training step of a Dense/Dropout stack with its gradients derived by hand (CPU, float32).

A chain of Dropout and Dense layers (optionally after a Flatten) trained on integer labels with
sparse categorical cross-entropy (the MLP baseline of time-series classification) spends most of
an eager step on the machinery around its matrix products: a dispatch, an allocation and an
autograd node for each of ~40 small ops, and Python around each layer. Its gradients have a
short closed form, so this step computes them directly: the forward keeps each layer's input
(after dropout), output and dropout mask; the backward is, layer by layer from the output,

    g = (softmax(z) - onehot(y)) / n              at the logits z (mean cross-entropy)
    g = g * (out > 0)                             through a relu
    dW = g^T @ input, db = sum(g), g = g @ W      through a Dense
    g = g * mask                                  through a Dropout (its scaled keep mask)

with the same kernels the autograd path uses (oneDNN's matmul for large products, relu fused
into it as a post-op; the same dropout masks, drawn from the same generators in the same
order), then the model's optimizer steps as usual. Measured on a 2-core AMD EPYC: the bench MLP
(Dropout + Dense 500 x3, batch 32) 28-29k -> 36-40k samples/s in one process.

`compile(jit_compile="auto")` (the default, as in Keras) lets `fit` use it whenever the model is
exactly such a chain (a Sequential, or a functional Model of one chain of layer calls, such as
`lamina.tsc.mlp`) and the batch is plain; anything else takes the autograd step, as do
`jit_compile=False` and `jit_compile=True` (which compiles it with torch.compile): other layers
or activations, regularizers, frozen weights, hooks, other losses or loss options, sample or
class weights, mixed precision, data-parallel training, other devices or dtypes, or a machine
without the dropout kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina import _native, activations
from lamina.kernels import dropout as _dropout_kernel
from lamina.kernels import linear as _linear
from lamina.layers.core import Dense
from lamina.layers.dropout import Dropout
from lamina.layers.reshaping import Flatten
from lamina.layers.symbolic import SymbolicTensor
from lamina.losses.probabilistic import NO_CLASS, SparseCategoricalCrossentropy
from lamina.models import _fusable
from lamina.models._folding import hooked

# The options of each layer the step computes (`_fusable.py`); which activation may stand where is
# checked in `for_model`.
DECLARED = {
    Dense: _fusable.fields("units", "use_bias", "kernel_initializer", "bias_initializer",
                           activation=("linear", "relu", "softmax"), trainable=(True,),
                           kernel_regularizer=(None,), bias_regularizer=(None,)),
    Dropout: _fusable.fields("rate", "seed", noise_shape=(None,)),
    Flatten: _fusable.fields(data_format=("channels_last",)),
}


class DenseStackStep:
    """One training step (forward, hand-derived backward, optimizer step) of a Dense stack."""

    def __init__(self, model, stack, from_logits, flatten=False):
        self.model, self.stack, self.from_logits, self.flatten = model, stack, from_logits, flatten
        self.params = [p for layer in stack if isinstance(layer, Dense)
                       for p in (layer.kernel, _bias(layer)) if p is not None]

    @classmethod
    def for_model(cls, model):
        """The step for `model`, or None where the model is not such a stack (see module doc)."""
        if (model._data_parallel is not None or model._grad_scaler is not None
                or model.dtype_policy.is_mixed or len(model._outputs_spec) != 1 or model._regularized
                or _dropout_kernel.library() is None or hooked(model, backward=True)):
            return None
        stack = _chain(model)
        if (not stack or not all(_fusable.accepts(layer, DECLARED) for layer in stack)
                or any(hooked(layer, backward=True) for layer in stack)):
            return None
        flatten = isinstance(stack[0], Flatten)
        if flatten:
            stack = stack[1:]  # a reshape of the batch to (n, features), done in `applies`
        if not stack or not isinstance(stack[-1], Dense) or any(isinstance(lay, Flatten) for lay in stack):
            return None
        for i, layer in enumerate(stack):
            if isinstance(layer, Dense):
                allowed = (activations.linear, activations.softmax) if i == len(stack) - 1 else (
                    activations.linear, activations.relu)
                weights = [w for w in (layer.kernel, _bias(layer)) if w is not None]
                if (layer.activation not in allowed or layer._regularizers
                        or not all(w.requires_grad and w.dtype == torch.float32
                                   and w.device.type == "cpu" for w in weights)):
                    return None
        spec = model._outputs_spec[0]
        loss = spec.loss
        softmax_output = stack[-1].activation is activations.softmax
        if (type(loss) is not SparseCategoricalCrossentropy or spec.weight != 1
                or loss.reduction != "sum_over_batch_size" or loss.options["ignore_class"] is not None
                or loss.options["axis"] != -1 or loss.options["from_logits"] == softmax_output):
            return None
        return cls(model, stack, from_logits=not softmax_output, flatten=flatten)

    def applies(self, x, y, sample_weight) -> bool:
        """Whether this batch can take the step: plain 2D float32 CPU inputs, integer-valued
        labels of one per sample, no sample weights, eager autograd on."""
        return (sample_weight is None and isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                and (x.dim() == 2 or (self.flatten and x.dim() > 2))
                and _native.float32_cpu(x) and x.is_contiguous() and x.shape[0] > 0
                and (y.dim() == 1 or (y.dim() == 2 and y.shape[1] == 1)) and y.shape[0] == x.shape[0]
                and torch.is_grad_enabled() and _native.eager(lowered_on=x.device.type)
                and not hooked(self.model, backward=True)
                and all(layer.training for layer in self.stack)
                and all(p.requires_grad and not p._backward_hooks and not p._post_accumulate_grad_hooks
                        for p in self.params))

    def __call__(self, x, y):
        """Run the step; returns (mean loss, the model's output) for the loss tracker and metrics."""
        with torch.no_grad():
            h, saved = x.reshape(x.shape[0], -1), []
            for layer in self.stack:
                if isinstance(layer, Dropout):
                    if layer.rate == 0:
                        continue
                    mask = _dropout_kernel.draw_mask(h, layer.rate, layer._rng(h.device))
                    h = h * mask
                    saved.append((layer, mask, None, False))
                else:
                    relu = layer.activation is activations.relu
                    out = _linear.linear(h, layer.kernel, _bias(layer), relu)
                    # the backward's products take the route the forward's took
                    saved.append((layer, h, out if relu else None, _linear.uses_onednn(h, layer.kernel)))
                    h = out
            logits = h
            labels = y.reshape(-1).long()
            log_p = torch.log_softmax(logits, 1)
            total = F.nll_loss(log_p, labels, ignore_index=NO_CLASS)  # -100 is a label too
            y_pred = logits if self.from_logits else activations.apply(activations.softmax, logits)
            grad = log_p.exp_()
            grad[torch.arange(labels.shape[0]), labels] -= 1.0
            grad.div_(labels.shape[0])
            grads = {}
            for index in range(len(saved) - 1, -1, -1):
                layer, kept, out, onednn = saved[index]
                if isinstance(layer, Dropout):
                    grad = grad * kept
                    continue
                if out is not None:
                    grad = torch.ops.aten.threshold_backward(grad, out, 0)
                grads[layer.kernel] = _linear.product(grad.t(), kept.t(), onednn)
                if layer.use_bias:
                    grads[layer.bias] = grad.sum(0)
                if index > 0:
                    grad = _linear.product(grad, layer.kernel.t(), onednn)
        self.model.optimizer.zero_grad()
        for p in self.params:
            p.grad = grads[p]
        self.model.optimizer.step(None)
        return total, y_pred


def _chain(model):
    """The layers of `model` in order when it is one chain of single-input, single-output layer
    calls (a Sequential, or a functional Model built that way), else None."""
    from lamina.models.model import Model
    from lamina.models.sequential import Sequential

    if type(model) is Sequential:
        return list(model._layer_stack)
    if type(model) is not Model or not model._graph or len(model._flat_inputs) != 1:
        return None
    previous, stack = model._flat_inputs[0], []
    for node in model._nodes:
        if (node.kwargs or len(node.args) != 1 or node.args[0] is not previous
                or not isinstance(node.outputs, SymbolicTensor) or node.layer in stack):
            return None
        stack.append(node.layer)
        previous = node.outputs
    return stack if len(model._flat_outputs) == 1 and previous is model._flat_outputs[0] else None


def _bias(layer):
    return layer.bias if layer.use_bias else None
