"""The normalization family on one statistics core (`_statistics`): each layer is a choice of the
axes its statistics keep and of how they are mixed and tracked."""

from lamina.layers.normalization.batch_normalization import BatchNormalization
from lamina.layers.normalization.conditional_batch_normalization import ConditionalBatchNormalization
from lamina.layers.normalization.factory import make_norm
from lamina.layers.normalization.group_normalization import GroupNormalization, InstanceNormalization
from lamina.layers.normalization.layer_normalization import LayerNormalization
from lamina.layers.normalization.preprocessing import Normalization
from lamina.layers.normalization.switchable_normalization import SwitchableNormalization

__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization", "InstanceNormalization",
           "SwitchableNormalization", "ConditionalBatchNormalization",
           "Normalization", "make_norm"]
