"""Keras' layers on torch. Each module holds one family; this file only re-exports them."""

from lamina.layers.activation_layers import *  # noqa: F403
from lamina.layers.attention import *  # noqa: F403
from lamina.layers.base import InputSpec, Layer  # noqa: F401
from lamina.layers.conv import *  # noqa: F403
from lamina.layers.core import *  # noqa: F403
from lamina.layers.dropout import *  # noqa: F403
from lamina.layers.input_layer import Input, InputLayer  # noqa: F401
from lamina.layers.merge import *  # noqa: F403
from lamina.layers.normalization import *  # noqa: F403
from lamina.layers.pooling import *  # noqa: F403
from lamina.layers.preprocessing import *  # noqa: F403
from lamina.layers.recurrent import *  # noqa: F403
from lamina.layers.reshaping import *  # noqa: F403
from lamina.layers.torch_wrapper import TorchModuleWrapper  # noqa: F401
