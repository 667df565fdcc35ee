"""Regression losses: squared, absolute, percentage and logarithmic errors, Huber, log-cosh and
cosine similarity. Each compares targets and outputs value by value and averages over the last
axis."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lamina.losses.base import EPSILON, Loss, non_negative_option

__all__ = [
    "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "LogCosh", "CosineSimilarity", "mean_squared_error",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "huber", "log_cosh", "cosine_similarity",
]


def mean_squared_error(y_true, y_pred):
    """`mean((y - p) ** 2)` over the last axis."""
    return (y_true.to(y_pred.dtype) - y_pred).square().mean(dim=-1)


def mean_absolute_error(y_true, y_pred):
    """`mean(|y - p|)` over the last axis."""
    return (y_true.to(y_pred.dtype) - y_pred).abs().mean(dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """`100 * mean(|y - p| / max(|y|, EPSILON))` over the last axis."""
    y_true = y_true.to(y_pred.dtype)
    return 100.0 * ((y_true - y_pred) / y_true.abs().clamp_min(EPSILON)).abs().mean(dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """`mean((log(1 + p) - log(1 + y)) ** 2)` over the last axis, values below EPSILON raised to it."""
    y_true = y_true.to(y_pred.dtype)
    return (torch.log1p(y_pred.clamp_min(EPSILON)) - torch.log1p(y_true.clamp_min(EPSILON))
            ).square().mean(dim=-1)


def huber(y_true, y_pred, delta=1.0):
    """`0.5 e²` where `|e| <= delta`, `delta * (|e| - 0.5 delta)` beyond; averaged over the last axis."""
    return F.huber_loss(y_pred, y_true.to(y_pred.dtype), reduction="none", delta=delta).mean(dim=-1)


def log_cosh(y_true, y_pred):
    """`mean(log(cosh(p - y)))` over the last axis, computed as `e + softplus(-2e) - log 2` so large
    errors do not overflow."""
    error = y_pred - y_true.to(y_pred.dtype)
    return (error + F.softplus(-2.0 * error) - math.log(2.0)).mean(dim=-1)


def _l2_normalize(x, axis):
    inverse_norm = torch.rsqrt(x.square().sum(dim=axis, keepdim=True)).clamp_max(1.0 / EPSILON)
    return x * inverse_norm


def cosine_similarity(y_true, y_pred, axis=-1):
    """`-sum(normalize(y) * normalize(p))` along `axis`: -1 for the same direction, 0 orthogonal
    (or a zero vector), 1 opposite."""
    y_true = y_true.to(y_pred.dtype)
    return -(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)).sum(dim=axis)


class MeanSquaredError(Loss):
    """Mean of squared errors over the last axis.

    Example:
        >>> MeanSquaredError()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.5000)
    """

    fn = staticmethod(mean_squared_error)


class MeanAbsoluteError(Loss):
    """Mean of absolute errors over the last axis.

    Example:
        >>> MeanAbsoluteError()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.5000)
    """

    fn = staticmethod(mean_absolute_error)


class MeanAbsolutePercentageError(Loss):
    """Mean absolute error relative to the target, in percent.

    Example:
        >>> MeanAbsolutePercentageError()(torch.tensor([[2.0, 4.0]]), torch.tensor([[1.0, 4.0]]))
        tensor(25.)
    """

    fn = staticmethod(mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(Loss):
    """Mean squared error between `log(1 + y)` and `log(1 + p)`: relative errors for positive targets.

    Example:
        >>> MeanSquaredLogarithmicError()(torch.tensor([[0.0]]), torch.tensor([[math.e - 1]]))
        tensor(1.0000)
    """

    fn = staticmethod(mean_squared_logarithmic_error)


class Huber(Loss):
    """Squared error for small errors, absolute error beyond `delta` (robust to outliers).

    Args:
        delta: >= 0, where the loss turns from quadratic to linear.
        reduction, name: see `Loss` (the default name is Keras' "huber_loss").

    Example:
        >>> Huber()(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.6, 0.4]]))
        tensor(0.1800)
    """

    fn = staticmethod(huber)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(reduction, name)
        self.options = dict(delta=non_negative_option("Huber", "delta", delta))


class LogCosh(Loss):
    """`log(cosh(error))`: about `e² / 2` for small errors and `|e| - log 2` for large ones.

    Example:
        >>> LogCosh()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.2169)
    """

    fn = staticmethod(log_cosh)


class CosineSimilarity(Loss):
    """Negative cosine similarity along `axis` (minimizing it aligns the directions).

    Args:
        axis: the axis of the vectors compared.
        reduction, name: see `Loss`.

    Example:
        >>> CosineSimilarity()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(-0.7071)
    """

    fn = staticmethod(cosine_similarity)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        if not isinstance(axis, int):
            raise ValueError(f"CosineSimilarity: `axis` must be an int. Received: axis={axis!r}")
        super().__init__(reduction, name)
        self.options = dict(axis=axis)
