"""What a model may leave out of, or fold into, its layers' calls: hook checks, and the ReLU that
a BatchNormalization in training applies inside its own passes."""

from __future__ import annotations

import weakref
from collections import Counter

import torch
from torch.nn.modules import module as torch_module

from lamina import activations
from lamina.layers.core import Activation
from lamina.layers.normalization.batch_normalization import BatchNormalization
from lamina.layers.symbolic import SymbolicTensor
from lamina.models import _fusable
from lamina.utils import tree

# The options the fold computes (`_fusable.py`): all of BatchNormalization's (the layer applies the
# ReLU in its own passes, whatever they are), and an Activation that is a ReLU.
DECLARED = {
    BatchNormalization: _fusable.fields(
        "axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
        "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer",
        "gamma_regularizer", "synchronized"),
    Activation: _fusable.fields(activation=("relu",)),
}
_verdicts = weakref.WeakKeyDictionary()  # layer -> accepted; options are fixed at construction


def _foldable(layer) -> bool:
    verdict = _verdicts.get(layer)
    if verdict is None:
        verdict = _verdicts[layer] = _fusable.accepts(layer, DECLARED)
    return verdict


def hooked(module, backward=False) -> bool:
    """Whether calling `module` runs forward hooks (its own or global ones; with `backward`,
    backward and backward-pre hooks too) that skipping it, or skipping its __call__, would leave
    out."""
    if (module._forward_hooks or module._forward_pre_hooks or torch_module._global_forward_hooks
            or torch_module._global_forward_pre_hooks):
        return True
    return backward and bool(module._backward_hooks or module._backward_pre_hooks
                             or torch_module._global_backward_hooks
                             or torch_module._global_backward_pre_hooks)


def relu_folds_into(layer, follower, x, training) -> bool:
    """Whether `follower` is a plain Activation("relu") that `layer`, a BatchNormalization in
    training, can apply inside its own passes (the rows kernels mask the gradient themselves,
    saving the ReLU's separate pass each way): no hooks on either, no mask on the input."""
    if not (isinstance(layer, BatchNormalization) and isinstance(follower, Activation)
            and _foldable(layer) and _foldable(follower)):
        return False
    active = training if training is not None else layer.training
    return (bool(active) and follower.activation is activations.relu and isinstance(x, torch.Tensor)
            and not hasattr(x, "_lamina_mask") and not hooked(layer) and not hooked(follower))


def relu_pairs(nodes, outputs) -> dict:
    """{index of a BatchNormalization node: index of the Activation node that alone reads its
    output} in a functional graph's `nodes`, where that output is not one of the model's
    `outputs`."""
    uses = Counter(id(t) for node in nodes for t in tree.flatten((node.args, node.kwargs))
                   if isinstance(t, SymbolicTensor))
    returned = {id(t) for t in outputs}
    position = {id(node): i for i, node in enumerate(nodes)}
    pairs = {}
    for i, node in enumerate(nodes):
        if not isinstance(node.layer, Activation) or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        parent = getattr(source, "node", None)
        if (parent is not None and id(parent) in position and isinstance(parent.layer, BatchNormalization)
                and parent.outputs is source and len(parent.args) == 1 and not parent.kwargs
                and uses[id(source)] == 1 and id(source) not in returned):
            pairs[position[id(parent)]] = i
    return pairs
