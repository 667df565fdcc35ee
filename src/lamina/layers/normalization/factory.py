"""make_norm: a normalization layer chosen by a short name, for models that make it a setting."""

from __future__ import annotations

from lamina.layers.base import Layer
from lamina.layers.normalization.batch_normalization import BatchNormalization
from lamina.layers.normalization.group_normalization import GroupNormalization, InstanceNormalization
from lamina.layers.normalization.layer_normalization import LayerNormalization
from lamina.layers.normalization.switchable_normalization import SwitchableNormalization
from lamina.utils.naming import lookup

_KINDS = {
    "bn": BatchNormalization, "batch": BatchNormalization,
    "ln": LayerNormalization, "layer": LayerNormalization,
    "in": InstanceNormalization, "instance": InstanceNormalization,
    "gn": GroupNormalization, "group": GroupNormalization,
    "sn": SwitchableNormalization, "switchable": SwitchableNormalization,
}


def make_norm(kind: str, **kwargs) -> Layer:
    """A new normalization layer of `kind`, built with `kwargs`:

    "bn" (or "batch") BatchNormalization, "ln" ("layer") LayerNormalization, "in" ("instance")
    InstanceNormalization, "gn" ("group") GroupNormalization, "sn" ("switchable")
    SwitchableNormalization. All take a channels_last input and return its shape, so a model can
    swap one for another with a single setting. (ConditionalBatchNormalization is not among
    them: it takes a second input.)

    Example:
        >>> make_norm("gn", groups=8)
        GroupNormalization(name='group_normalization')
    """
    return lookup("normalization kind", kind, _KINDS)(**kwargs)
