"""Margin losses for classifiers scored by a raw output: hinge, squared hinge, categorical hinge."""

from __future__ import annotations

import torch

from lamina.losses.base import Loss

__all__ = ["Hinge", "SquaredHinge", "CategoricalHinge", "hinge", "squared_hinge", "categorical_hinge"]


def _signed_labels(y_true):
    """-1/1 labels: 0/1 labels are mapped to -1/1 when every target is 0 or 1, as Keras does."""
    all_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(all_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    """`mean(max(1 - y * p, 0))` over the last axis, for labels -1/1 (or 0/1)."""
    margin = 1.0 - _signed_labels(y_true.to(y_pred.dtype)) * y_pred
    return margin.clamp_min(0.0).mean(dim=-1)


def squared_hinge(y_true, y_pred):
    """`mean(max(1 - y * p, 0) ** 2)` over the last axis, for labels -1/1 (or 0/1)."""
    margin = 1.0 - _signed_labels(y_true.to(y_pred.dtype)) * y_pred
    return margin.clamp_min(0.0).square().mean(dim=-1)


def categorical_hinge(y_true, y_pred):
    """`max(0, 1 + max_wrong(p) - p_true)` for one-hot targets: the true class must win by 1."""
    y_true = y_true.to(y_pred.dtype)
    true_score = (y_true * y_pred).sum(dim=-1)
    best_wrong = ((1.0 - y_true) * y_pred).amax(dim=-1)
    return (best_wrong - true_score + 1.0).clamp_min(0.0)


class Hinge(Loss):
    """Hinge loss `max(1 - y * p, 0)` for -1/1 (or 0/1) labels and a linear output.

    Example:
        >>> Hinge()(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 0.5]]))
        tensor(1.)
    """

    fn = staticmethod(hinge)


class SquaredHinge(Loss):
    """Squared hinge loss `max(1 - y * p, 0) ** 2` for -1/1 (or 0/1) labels.

    Example:
        >>> SquaredHinge()(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 0.5]]))
        tensor(1.2500)
    """

    fn = staticmethod(squared_hinge)


class CategoricalHinge(Loss):
    """Multi-class hinge loss for one-hot targets: `max(0, 1 + best wrong score - true score)`.

    Example:
        >>> CategoricalHinge()(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.7]]))
        tensor(0.5000)
    """

    fn = staticmethod(categorical_hinge)
