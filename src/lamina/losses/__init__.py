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
from lamina.utils.naming import lookup, to_snake_case

_PUBLIC = [*_probabilistic, *_regression, *_margin, *_segmentation]
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
        if identifier.get("class_name") == "function":  # a Keras-serialized loss function
            return lookup("loss", identifier.get("config"), _NAMES)()
        cls = lookup("loss", identifier.get("class_name"), _CLASSES)
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, str):
        return (_CLASSES.get(identifier) or lookup("loss", identifier, _NAMES))()
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        return CustomLoss(identifier)
    return lookup("loss", identifier, _NAMES)()


__all__ = ["Loss", "CustomLoss", "AutoLoss", "EPSILON", "REDUCTIONS", "reduce_weighted", "get",
           "check", *_PUBLIC]
