"""Which layers a model-level fusion may compute itself, decided from what the layers declare.

A fusion (the Dense chain at inference, `_dense_chain.py`; the hand-derived Dense step,
`_dense_step.py`; BatchNormalization's folded ReLU, `_folding.py`) stands in for some layers'
calls. It declares, for each layer class it implements, every `get_config()` entry it has
accounted for, with the values it computes correctly (ANY: every value). It takes a layer only when
the layer is of a declared class exactly (a subclass may have its own `call`) and every entry of
the layer's config is declared with an accepted value. An option a layer gains later shows in its
config (the base Layer adds `dtype` and `activity_regularizer` there when they are set) and is
unknown to the fusion, which then leaves the layer to its own call instead of skipping the option.
What a fusion also checks on every call (activations reassigned after building, hooks, modes) is
checked there.
"""

from __future__ import annotations

ANY = None


def accepts(layer, declared: dict) -> bool:
    """Whether `declared` ({layer class: {config key: ANY or a tuple of accepted values}}) covers
    `layer`: its exact class, and every key of its config with an accepted value."""
    fields = declared.get(type(layer))
    if fields is None:
        return False
    config = layer.get_config()
    return all(key in fields and (fields[key] is ANY or config[key] in fields[key]) for key in config)


def fields(*names: str, **values: tuple) -> dict:
    """A declaration: `names` take any value, each of `values` one of those given."""
    return {**dict.fromkeys(("name", "trainable", *names), ANY), **values}
