"""Losses with Keras 3's names, formulas, options and reductions, and the checks that explain their
misuse.

- Each loss is a function `fn(y_true, y_pred, **options)` returning one value per sample, and a
  `Loss` class adding a reduction, sample weights and masks: `BinaryCrossentropy(from_logits=True)`.
- `get(identifier)` resolves a Keras name ("sparse_categorical_crossentropy", "mse", …), a class, a
  function, a Keras config or any callable `fn(y_true, y_pred)`; `get("auto")` picks the loss from
  the targets and the output (see `AutoLoss`).
- `check(y_true, model_or_output, loss)` raises a ValueError naming what is wrong and the loss and
  output activation to use instead; fit() and evaluate() run it before the first step.

When the output comes from a lamina softmax or sigmoid, the cross-entropies are computed from its
logits (log-softmax / log-sigmoid): finite losses and exact gradients even for extreme logits.

Example:
    >>> loss = lamina.losses.get("sparse_categorical_crossentropy")
    >>> loss(np.array([1]), torch.tensor([[0.1, 0.9]]))
    tensor(0.1054)
"""

import functools

from lamina.losses.base import EPSILON, REDUCTIONS, CustomLoss, Loss, reduce_weighted
from lamina.losses.checks import AutoLoss, check
from lamina.losses.margin import *  # noqa: F403
from lamina.losses.margin import __all__ as _margin
from lamina.losses.probabilistic import *  # noqa: F403
from lamina.losses.probabilistic import __all__ as _probabilistic
from lamina.losses.regression import *  # noqa: F403
from lamina.losses.regression import __all__ as _regression
from lamina.losses.segmentation import *  # noqa: F403
from lamina.losses.segmentation import __all__ as _segmentation
from lamina.utils.config_dicts import from_config_dict, to_config_dict
from lamina.utils.naming import lookup, to_snake_case

_PUBLIC = [*_probabilistic, *_regression, *_margin, *_segmentation]


def _taking_arrays(function):
    """A loss function that also takes numpy arrays and lists, as Keras' do (converted with
    Keras' dtype rules); the Loss classes call the unwrapped function."""

    @functools.wraps(function)
    def loss_function(y_true, y_pred, *args, **kwargs):
        from lamina.ops import convert_to_tensor

        return function(convert_to_tensor(y_true), convert_to_tensor(y_pred), *args, **kwargs)

    return loss_function


for _name in _PUBLIC:
    if _name[0].islower():
        globals()[_name] = _taking_arrays(globals()[_name])
_CLASSES = {n: globals()[n] for n in _PUBLIC if n[0].isupper()}
_CLASSES["AutoLoss"] = AutoLoss
# Keras' function names, each standing for its class (loss=losses.binary_crossentropy works too).
_FUNCTIONS = {globals()[to_snake_case(n)]: cls for n, cls in _CLASSES.items()
              if to_snake_case(n) in globals()}
_NAMES = {fn.__name__: cls for fn, cls in _FUNCTIONS.items()}
_NAMES.update({
    "auto": AutoLoss, "bce": BinaryCrossentropy, "kld": KLDivergence,  # noqa: F405
    "kullback_leibler_divergence": KLDivergence, "mae": MeanAbsoluteError,  # noqa: F405
    "mse": MeanSquaredError, "mape": MeanAbsolutePercentageError,  # noqa: F405
    "msle": MeanSquaredLogarithmicError, "logcosh": LogCosh, "huber_loss": Huber,  # noqa: F405
})


def get(identifier) -> Loss:
    """A Loss object from a Keras name or class name, a Loss class or object, a lamina/Keras loss
    function, a Keras config dict, or any callable `fn(y_true, y_pred)`."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return (_CLASSES.get(identifier) or lookup("loss", identifier, _NAMES))()
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        return CustomLoss(identifier)
    return lookup("loss", identifier, _NAMES)()


def serialize(loss) -> dict | str:
    """Keras' config dict of a Loss object; the name of a loss function."""
    if not isinstance(loss, Loss):
        name = getattr(loss, "__name__", None)
        if name in _NAMES:
            return name
        raise ValueError(f"losses.serialize: {loss!r} is neither a Loss nor a Keras loss function.")
    return to_config_dict(loss, "keras.losses", _CLASSES)


def deserialize(config, custom_objects=None) -> Loss:
    """A Loss from a Keras name or config dict; `custom_objects` adds classes by name."""
    if isinstance(config, dict):
        if config.get("class_name") == "function":  # a Keras-serialized loss function
            return lookup("loss", config.get("config"), _NAMES)()
        return from_config_dict("loss", config, _CLASSES, custom_objects)
    if custom_objects and isinstance(config, str) and config in custom_objects:
        return get(custom_objects[config])
    return get(config)


__all__ = ["Loss", "CustomLoss", "AutoLoss", "EPSILON", "REDUCTIONS", "reduce_weighted", "get",
           "serialize", "deserialize", "check", *_PUBLIC]
