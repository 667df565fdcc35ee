"""Sequential: a plain stack of layers, each feeding the next."""

from __future__ import annotations

import torch
from torch import nn

from lamina.data.adapters import match_input_dtype, match_input_rank
from lamina.layers.base import Layer
from lamina.layers.input_layer import Input, InputLayer
from lamina.layers.symbolic import SymbolicTensor
from lamina.models import _dense_chain
from lamina.models._folding import hooked, relu_folds_into
from lamina.models.model import Model


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: list of layers; the first may be `layers.Input(shape)`. Without an Input, the
            model is built on its first call (or `fit`), from the data's shape.

    Example:
        >>> model = Sequential([layers.Input((4,)), layers.Dense(8), layers.Dense(1)])
        >>> model.add(layers.Activation("sigmoid"))
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layer_stack = nn.ModuleList()
        self._input_tensor = None
        self._outputs_symbolic: list[SymbolicTensor] = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if len(self._layer_stack) or self._input_tensor is not None:
                raise ValueError(
                    "An Input can only be the first entry of a Sequential model; "
                    f"model '{self.name}' already has layers."
                )
            self._input_tensor = layer.output
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"Sequential.add takes a layer (a torch.nn.Module). Received: {layer!r}"
            )
        if not isinstance(layer, Layer):
            from lamina.layers.torch_wrapper import TorchModuleWrapper

            layer = TorchModuleWrapper(layer)
        if not len(self._layer_stack) and layer._declared_input_shape is not None:
            self._input_tensor = Input(layer._declared_input_shape)
        self._layer_stack.append(layer)
        self._stack_changed()
        if self._input_tensor is not None:
            previous = self._outputs_symbolic[-1] if self._outputs_symbolic else self._input_tensor
            self._outputs_symbolic.append(self._symbolic_step(layer, previous))
            self.built = True

    def _symbolic_step(self, layer, x):
        try:
            return layer(x)
        except ValueError as e:
            raise ValueError(f"Sequential '{self.name}', adding layer '{layer.name}': {e}") from e

    def pop(self):
        layer = self._layer_stack[-1]
        del self._layer_stack[-1]
        self._stack_changed()
        if self._outputs_symbolic:
            self._outputs_symbolic.pop()
        return layer

    def _stack_changed(self) -> None:
        self._output_probe = None  # the outputs changed
        self.__dict__.pop("_plans", None)  # and the inference plans with them

    @property
    def layers(self) -> list:
        return list(self._layer_stack)

    @property
    def inputs(self):
        return [self._input_tensor] if self._input_tensor is not None else None

    @property
    def outputs(self):
        return [self._outputs_symbolic[-1]] if self._outputs_symbolic else None

    def build(self, input_shape):
        if self._input_tensor is None:
            self._input_tensor = Input(tuple(input_shape)[1:])
            x = self._input_tensor
            for layer in self._layer_stack:
                x = self._symbolic_step(layer, x)
                self._outputs_symbolic.append(x)

    def __call__(self, *args, **kwargs):
        # An inference call with a recorded plan runs it at once: the full call's checks (input
        # rank, dtype and shape, spec, masks, modes) passed for inputs of the same shape, dtype
        # and device when the plan was recorded, and hooks on the model need its full call.
        if len(args) == 1 and _inference_only(kwargs) and not hooked(self, backward=True):
            plan = self._inference_plan(args[0], None, None, record=False)
            if plan is not None:
                return _run(plan, args[0])
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        plan = self._inference_plan(inputs, training, mask, record=True)
        if plan is not None:
            return _run(plan, inputs)
        x = inputs
        stack = self._layer_stack
        fused_relu = None  # the Activation("relu") folded into the BatchNormalization before it
        for i, layer in enumerate(stack):
            if layer is fused_relu or _passes_through(layer, training):
                continue
            follower = stack[i + 1] if i + 1 < len(stack) else None
            if relu_folds_into(layer, follower, x, training):
                fused_relu = follower
                x = layer(x, training=training, _relu=True)
            else:
                x = layer(x, training=training)
        return x

    def _inference_plan(self, inputs, training, mask, record):
        """The layers' own `call`s, for an inference call that needs nothing else of what a layer
        call does (spec checks, masks, hooks, mode resolution, activity penalties): every layer in
        inference mode, no mask, no hooks, and inputs of a shape, dtype and device that one full
        call has already taken through those checks. None sends the call through the full path
        (and with `record`, made from the full path, the first time for such inputs records the
        plan for the next)."""
        if (training or mask is not None or not isinstance(inputs, torch.Tensor)
                or hasattr(inputs, "_lamina_mask") or torch.compiler.is_compiling()
                or torch.jit.is_tracing() or self.activity_regularizer is not None):
            return None
        stack = self._layer_stack
        if any(layer.training or hooked(layer) for layer in stack):
            return None
        key = (inputs.shape[1:], inputs.dtype, inputs.device)
        plans = self.__dict__.setdefault("_plans", {})  # emptied when the stack changes
        if key in plans:
            return plans[key]  # None where some layer needs its full call
        if record:
            plans[key] = _plan(stack)  # this call validates; the next uses it
        return None

    def forward(self, inputs, training=None, mask=None):
        if self._input_tensor is None and isinstance(inputs, torch.Tensor):
            self.build(inputs.shape)  # deferred: a float Input as Keras builds, so data are cast
        if self._input_tensor is not None and isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:  # Keras would silently take the first
                raise ValueError(
                    f"Sequential '{self.name}' has one input, but received a list of {len(inputs)} "
                    "arrays (as `x`). Pass one array, or build a functional Model with several "
                    "Inputs."
                )
            inputs = inputs[0]  # a one-element list is the one input, as in Keras
        if self._input_tensor is not None and hasattr(inputs, "shape"):
            inputs = match_input_rank(inputs, self._input_tensor.shape)
            self._check_data(inputs)
            inputs = match_input_dtype(inputs, self._input_tensor.dtype,
                                       f"Sequential '{self.name}'")
        return super().forward(inputs, training=training, mask=mask)

    def _check_data(self, x) -> None:
        expected, got = self._input_tensor.shape, tuple(x.shape)
        if len(got) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected[1:], got[1:])
        ):
            first = self._layer_stack[0].name if len(self._layer_stack) else "?"
            raise ValueError(
                f"Sequential '{self.name}' expects input of shape {expected} (into layer "
                f"'{first}'), but received data of shape {got}."
            )

    def compute_output_shape(self, input_shape):
        if self._outputs_symbolic and tuple(input_shape) == self._input_tensor.shape:
            return self._outputs_symbolic[-1].shape
        return Layer.compute_output_shape(self, input_shape)

    def get_config(self) -> dict:
        from lamina.saving.config import model_config

        return model_config(self)


def _plan(stack):
    """[(layer.call, its keyword arguments)] for the inference plan, or None where some layer
    needs its full call: not a plain lamina layer (a nested model, a wrapper with its own
    forward), or one that may make masks (Embedding, Masking, Lambda, custom compute_mask)."""
    kept = []
    for layer in stack:
        if _passes_through(layer, None):
            continue
        cls = type(layer)
        if (not isinstance(layer, Layer) or not layer.built or cls.forward is not Layer.forward
                or cls.__call__ is not Layer.__call__
                or not (cls.compute_mask is Layer.compute_mask or layer.passes_masks_only)):
            return None
        kept.append(layer)
    # Consecutive Dense layers become one step (models/_dense_chain.py).
    return [(item, {}) if isinstance(item, _dense_chain.DenseChain)
            else (item.call, item._mode_kwargs(None, None)) for item in _dense_chain.group(kept)]


def _inference_only(kwargs) -> bool:
    """Whether a call's keyword arguments are none, or `training=None` or `training=False` alone."""
    if not kwargs:
        return True
    training = kwargs.get("training", True)
    return len(kwargs) == 1 and (training is None or training is False)


def _run(plan, x):
    for run, kwargs in plan:
        x = run(x, **kwargs)
    return x


def _passes_through(layer, training) -> bool:
    """Whether `layer` is the identity in this call and may be left out: a dropout-type layer in
    inference mode (predict, evaluate) with no forward hooks to run."""
    if not getattr(layer, "identity_in_inference", False):
        return False
    if training if training is not None else layer.training:
        return False
    return not hooked(layer)
