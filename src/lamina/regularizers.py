"""Weight regularizers with Keras' names: L1, L2, L1L2 (and l1, l2, l1_l2), get/serialize/deserialize.
OrthogonalRegularizer is not provided."""

from __future__ import annotations

from lamina.utils.config_dicts import from_config_dict, to_config_dict
from lamina.utils.naming import lookup

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize", "deserialize"]


class Regularizer:
    def __call__(self, w):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        penalty = 0.0
        if self.l1:
            penalty = penalty + self.l1 * w.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * w.square().sum()
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras' lowercase names are the classes themselves: regularizers.l2(1e-4) is L2(1e-4).
l1, l2, l1_l2 = L1, L2, L1L2

_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2}
_CLASSES = {c.__name__: c for c in (L1, L2, L1L2)}


def get(identifier):
    """A regularizer from a Keras name, a config dict, a class or a callable `w -> penalty`."""
    if identifier is None or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    return lookup("regularizer", identifier, _NAMES)()


def serialize(regularizer):
    """Keras' config dict of a regularizer (None for None)."""
    if regularizer is None:
        return None
    return to_config_dict(regularizer, "keras.regularizers", _CLASSES)


def deserialize(config, custom_objects=None):
    """A regularizer from a Keras name or config dict."""
    if isinstance(config, str):
        return get(config)
    return from_config_dict("regularizer", config, _CLASSES, custom_objects)
