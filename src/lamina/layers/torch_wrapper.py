"""TorchModuleWrapper: any torch.nn.Module used as a lamina layer (as keras.layers.TorchModuleWrapper)."""

from __future__ import annotations

from torch import nn

from lamina.layers.base import Layer

__all__ = ["TorchModuleWrapper"]


class TorchModuleWrapper(Layer):
    """Wraps a torch module so it can sit in a Sequential or a functional graph.

    The module keeps its own layout and its own parameters; its train/eval mode follows the model.
    Output shapes inside a graph are found by running it once on zeros.
    """

    def __init__(self, module: nn.Module, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"TorchModuleWrapper needs a torch.nn.Module. Received: {module!r}")
        self.module = module
        self.built = True

    def call(self, inputs):
        return self.module(inputs)
