"""Overlap losses for segmentation masks: Dice and Tversky."""

from __future__ import annotations

from lamina.losses.base import EPSILON, Loss, non_negative_option

__all__ = ["Dice", "Tversky", "dice", "tversky"]


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """`1 - hit / (hit + alpha * missed + beta * spurious + EPSILON)`, with the soft masses
    `hit = y * p`, `missed = y * (1 - p)`, `spurious = (1 - y) * p` summed over `axis` (None: over
    everything, one value for the batch). Keras weighs `missed` by alpha and `spurious` by beta."""
    y_true = y_true.to(y_pred.dtype)
    hit = (y_true * y_pred).sum(dim=axis)
    missed = (y_true * (1.0 - y_pred)).sum(dim=axis)
    spurious = ((1.0 - y_true) * y_pred).sum(dim=axis)
    return 1.0 - hit / (hit + alpha * missed + beta * spurious + EPSILON)


def dice(y_true, y_pred, axis=None):
    """`1 - 2 |y ∩ p| / (|y| + |p| + EPSILON)`, summed over `axis` (None: over everything)."""
    y_true = y_true.to(y_pred.dtype)
    overlap = (y_true * y_pred).sum(dim=axis)
    return 1.0 - 2.0 * overlap / (y_true.sum(dim=axis) + y_pred.sum(dim=axis) + EPSILON)


def _axes(loss, axis):
    if axis is None or isinstance(axis, int):
        return axis
    if isinstance(axis, (list, tuple)) and all(isinstance(a, int) for a in axis):
        return tuple(axis)
    raise ValueError(f"{loss}: `axis` must be None, an int or a tuple of ints. Received: axis={axis!r}")


class Dice(Loss):
    """Dice loss: one minus the soft overlap of target and predicted masks.

    Args:
        axis: the axes the overlap is summed over; None sums over everything (one value per
            batch), `(1, 2)` gives one value per image of a (batch, height, width) mask.
        reduction, name: see `Loss`.

    Example:
        >>> Dice()(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.3333)
    """

    fn = staticmethod(dice)

    def __init__(self, axis=None, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.options = dict(axis=_axes("Dice", axis))


class Tversky(Loss):
    """Tversky loss: Dice with separate weights for missed target mass (`alpha`) and spurious
    predicted mass (`beta`).

    Args:
        alpha: >= 0, the weight of `y * (1 - p)` (target the prediction missed).
        beta: >= 0, the weight of `(1 - y) * p` (prediction outside the target).
            0.5 and 0.5 give the Dice loss.
        axis: as in `Dice`.
        reduction, name: see `Loss`.

    Example:
        >>> Tversky(alpha=0.3, beta=0.7)(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.4118)
    """

    fn = staticmethod(tversky)

    def __init__(self, alpha=0.5, beta=0.5, axis=None, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.options = dict(alpha=non_negative_option("Tversky", "alpha", alpha),
                            beta=non_negative_option("Tversky", "beta", beta),
                            axis=_axes("Tversky", axis))
