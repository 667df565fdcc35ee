"""Losses with Keras' names, formulas and reductions.

Each loss is a function `fn(y_true, y_pred, **options) -> per-sample loss` and a class wrapping it
with a reduction and sample weights. When `y_pred` comes from a softmax or sigmoid applied by a
lamina layer, the cross-entropies use the logits it kept (log-softmax / log-sigmoid): the same value
as Keras' clipped-probability formula wherever that one is exact, and finite with correct
gradients where clipping would saturate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina.utils.naming import lookup

__all__ = [
    "Loss", "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "MeanSquaredError", "MeanAbsoluteError", "Huber", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "mean_squared_error",
    "mean_absolute_error", "huber", "get",
]

EPSILON = 1e-7  # Keras' backend epsilon, used to clip probabilities


def _logits_of(y_pred, squash: str):
    """The pre-activation of y_pred if a lamina layer produced it with `squash`, else None."""
    if getattr(y_pred, "_lamina_squash", None) == squash:
        return y_pred._lamina_logits
    return None


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true = y_true.to(y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    logits = y_pred if from_logits else _logits_of(y_pred, "sigmoid")
    if logits is not None:
        bce = F.binary_cross_entropy_with_logits(logits, y_true, reduction="none")
    else:
        p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        bce = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log1p(-p))
    return bce.mean(dim=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true = y_true.to(y_pred.dtype)
    if label_smoothing:
        num_classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -(y_true * _log_probs(y_pred, from_logits, axis)).sum(dim=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    y_true = _sparse_labels(y_true, y_pred)
    log_p = _log_probs(y_pred, from_logits, axis)
    if axis not in (-1, y_pred.ndim - 1):
        log_p = log_p.movedim(axis, -1)
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = torch.where(valid, y_true, torch.zeros_like(y_true))
    loss = -log_p.gather(-1, y_true.unsqueeze(-1)).squeeze(-1)
    if ignore_class is not None:
        loss = loss * valid
    return loss


def _log_probs(y_pred, from_logits, axis):
    logits = y_pred if from_logits else _logits_of(y_pred, "softmax")
    if logits is not None:
        return torch.log_softmax(logits, dim=axis)
    p = y_pred / y_pred.sum(dim=axis, keepdim=True)
    return torch.log(p.clamp(EPSILON, 1.0 - EPSILON))


def _sparse_labels(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.is_floating_point():
        y_true = y_true.long()
    return y_true.long()


def mean_squared_error(y_true, y_pred):
    return (y_pred - y_true.to(y_pred.dtype)).square().mean(dim=-1)


def mean_absolute_error(y_true, y_pred):
    return (y_pred - y_true.to(y_pred.dtype)).abs().mean(dim=-1)


def huber(y_true, y_pred, delta=1.0):
    return F.huber_loss(y_pred, y_true.to(y_pred.dtype), reduction="none", delta=delta).mean(-1)


_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "none", None)


class Loss:
    """A loss function with its options, a reduction and sample weights.

    Args:
        reduction: "sum_over_batch_size" (Keras' default: sum of weighted losses divided by their
            count), "sum", "mean" (weighted mean) or "none".
        name: the name shown in logs.
    """

    fn = None

    def __init__(self, reduction="sum_over_batch_size", name=None, **options):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: `reduction` must be one of {_REDUCTIONS[:-1]}. "
                f"Received: reduction={reduction!r}"
            )
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)
        self.options = options

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self.options)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        losses = self.call(y_true, y_pred)
        return reduce_weighted(losses, sample_weight, self.reduction)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self.options}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def reduce_weighted(losses, sample_weight, reduction):
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, dtype=losses.dtype, device=losses.device)
        while sample_weight.ndim > losses.ndim and sample_weight.shape[-1] == 1:
            sample_weight = sample_weight.squeeze(-1)
        while sample_weight.ndim < losses.ndim:
            sample_weight = sample_weight.unsqueeze(-1)
        losses = losses * sample_weight
    if reduction in ("none", None):
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    if reduction == "mean" and sample_weight is not None:
        return total / sample_weight.expand_as(losses).sum().clamp_min(EPSILON)
    return total / max(losses.numel(), 1)


class BinaryCrossentropy(Loss):
    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, **kwargs):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                         **kwargs)


class CategoricalCrossentropy(Loss):
    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, **kwargs):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                         **kwargs)


class SparseCategoricalCrossentropy(Loss):
    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, ignore_class=None, axis=-1, **kwargs):
        super().__init__(from_logits=from_logits, ignore_class=ignore_class, axis=axis, **kwargs)


class MeanSquaredError(Loss):
    fn = staticmethod(mean_squared_error)


class MeanAbsoluteError(Loss):
    fn = staticmethod(mean_absolute_error)


class Huber(Loss):
    fn = staticmethod(huber)

    def __init__(self, delta=1.0, **kwargs):
        super().__init__(delta=delta, **kwargs)


def _snake(name):
    from lamina.utils.naming import to_snake_case

    return to_snake_case(name)


_NAMES = {
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "huber": Huber,
}
# Function names for `get` in the form Keras users write them (loss=losses.binary_crossentropy).
_FUNCTIONS = {binary_crossentropy: BinaryCrossentropy, categorical_crossentropy:
              CategoricalCrossentropy, sparse_categorical_crossentropy:
              SparseCategoricalCrossentropy, mean_squared_error: MeanSquaredError,
              mean_absolute_error: MeanAbsoluteError, huber: Huber}


def get(identifier) -> Loss:
    """A Loss object from a Keras name, a Loss, a lamina loss function or any callable."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        return _CustomLoss(identifier)
    if isinstance(identifier, dict):
        classes = {c.__name__: c for c in _NAMES.values()}
        cls = lookup("loss", identifier["class_name"], classes)
        return cls.from_config(identifier.get("config", {}))
    return lookup("loss", identifier, _NAMES)()


class _CustomLoss(Loss):
    """A user function `fn(y_true, y_pred)` returning per-sample (or scalar) losses."""

    def __init__(self, fn, **kwargs):
        super().__init__(name=getattr(fn, "__name__", "loss"), **kwargs)
        self.custom_fn = fn

    def call(self, y_true, y_pred):
        return self.custom_fn(y_true, y_pred)


def check(y_true, y_pred, loss, output_name="output") -> None:
    """Raise ValueError if the targets cannot be right for this loss and output.

    Run by fit/evaluate before the first step, on all the targets (so a label out of range in
    the last batch is found before an epoch is spent).
    """
    loss = get(loss)
    y_true = torch.as_tensor(y_true)
    if y_true.is_floating_point() and bool(torch.isnan(y_true).any()):
        raise ValueError(f"The targets for '{output_name}' contain NaN; clean them before training.")
    units = y_pred.shape[-1] if y_pred.ndim else 1
    name = loss.name
    if isinstance(loss, SparseCategoricalCrossentropy):
        labels = _sparse_labels(y_true, y_pred) if y_true.ndim else y_true
        if y_true.is_floating_point() and not bool((y_true == y_true.round()).all()):
            raise ValueError(
                f"{name} expects integer class labels 0..{units - 1}, but the targets for "
                f"'{output_name}' hold non-integer values. For one-hot or soft targets use "
                "categorical_crossentropy."
            )
        ignore = loss.options.get("ignore_class")
        valid = labels if ignore is None else labels[labels != ignore]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= units):
            raise ValueError(
                f"{name}: labels must be in 0..{units - 1} for an output with {units} units, but "
                f"the targets for '{output_name}' range over {int(valid.min())}..{int(valid.max())}."
                f" Give the last layer {int(valid.max()) + 1} units, or re-encode the labels."
            )
    elif isinstance(loss, CategoricalCrossentropy):
        if y_true.shape[-1:] != y_pred.shape[-1:] and y_true.ndim >= 1:
            raise ValueError(
                f"{name} expects one-hot targets of width {units} (the output's units), but the "
                f"targets for '{output_name}' have shape {tuple(y_true.shape)}. For integer labels "
                "use sparse_categorical_crossentropy, or lamina.utils.to_categorical(y)."
            )
