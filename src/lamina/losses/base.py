"""The Loss base class: a per-sample loss function with its options, a reduction, sample weights and
masks, reduced exactly as Keras 3 reduces them."""

from __future__ import annotations

import torch

from lamina.utils.naming import to_snake_case

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _logits_of(y_pred, squash: str, axis: int = -1):
    """The pre-activation of y_pred if a lamina layer produced it with `squash` ("softmax" over the
    last axis, or "sigmoid"), else None."""
    if getattr(y_pred, "_lamina_squash", None) != squash:
        return None
    if squash == "softmax" and axis not in (-1, y_pred.ndim - 1):
        return None
    return y_pred._lamina_logits


def _carried(t, transform, keeps_softmax_axis):
    """transform(t), keeping the logits a softmax/sigmoid output carries: a sigmoid's always, a
    softmax's only if the transform leaves its axis alone."""
    out = transform(t)
    squash = getattr(t, "_lamina_squash", None)
    if squash == "sigmoid" or (squash == "softmax" and keeps_softmax_axis):
        out._lamina_logits = transform(t._lamina_logits)
        out._lamina_squash = squash
    return out


def _reshaped(t, reshape):
    return _carried(t, reshape, keeps_softmax_axis=False)


def match_rank(a, b, expand_rank_1=True):
    """Bring `a` and `b` to the same rank when they differ by one trailing axis of size 1, as Keras
    does: a rank-1 side gains that axis, otherwise the longer side loses it."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        if b.ndim == 1 and expand_rank_1:
            return a, _reshaped(b, lambda t: t.unsqueeze(-1))
        return _reshaped(a, lambda t: t.squeeze(-1)), b
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        if a.ndim == 1 and expand_rank_1:
            return _reshaped(a, lambda t: t.unsqueeze(-1)), b
        return a, _reshaped(b, lambda t: t.squeeze(-1))
    return a, b


def _divide_no_nan(numerator, denominator):
    """numerator / denominator, and 0 where the denominator is 0 (with finite gradients)."""
    denominator = torch.as_tensor(denominator, dtype=numerator.dtype, device=numerator.device)
    zero = denominator == 0
    safe = torch.where(zero, torch.ones_like(denominator), denominator)
    return torch.where(zero, torch.zeros_like(numerator), numerator / safe)


def _mask_weights(mask, reduction, dtype):
    """A mask as weights. For the averaging reductions the valid entries weigh total/valid, so the
    average is over the valid entries only."""
    mask = mask.bool()
    if reduction in ("mean", "sum_over_batch_size"):
        per_valid = _divide_no_nan(torch.tensor(float(mask.numel()), dtype=dtype, device=mask.device),
                                   mask.sum().to(dtype))
        return torch.where(mask, per_valid, torch.zeros((), dtype=dtype, device=mask.device))
    return mask.to(dtype)


def reduce_weighted(losses, sample_weight=None, reduction="sum_over_batch_size", mask=None):
    """Weight per-sample losses by `sample_weight` and `mask`, then reduce them.

    Reductions (Keras 3): "sum_over_batch_size" and "mean" divide the weighted sum by the number of
    loss values; "mean_with_sample_weight" divides it by the sum of the weights; "sum" sums;
    "none"/None returns the weighted values. A weight of one axis fewer or more than the losses
    (a trailing axis of size 1) is matched to them first.
    """
    weight = None
    if sample_weight is not None:
        weight = torch.as_tensor(sample_weight, device=losses.device).to(losses.dtype)
    if mask is not None:
        mask_weight = _mask_weights(torch.as_tensor(mask, device=losses.device), reduction,
                                    losses.dtype)
        if weight is None:
            weight = mask_weight
        else:
            mask_weight, weight = match_rank(mask_weight, weight)
            weight = weight * mask_weight
    if weight is not None:
        losses, weight = match_rank(losses, weight)
        losses = losses * weight
    if reduction in ("none", None) or losses.ndim == 0 or tuple(losses.shape) == (0,):
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weight is not None:
        return _divide_no_nan(total, weight.sum())
    return total / losses.numel() if losses.numel() else total * 0.0


def _as_prediction(y_pred):
    """A float tensor; half-precision outputs are computed on in float32, as Keras does."""
    y_pred = torch.as_tensor(y_pred)
    if y_pred.dtype in (torch.float16, torch.bfloat16):
        return _carried(y_pred, lambda t: t.float(), keeps_softmax_axis=True)
    return y_pred if y_pred.is_floating_point() else y_pred.to(torch.float32)


class Loss:
    """A loss: `loss(y_true, y_pred, sample_weight=None)` returns the reduced value.

    Subclasses set `fn`, a function `fn(y_true, y_pred, **options)` returning one loss value per
    sample (per position for sequences), and keep their constructor options in `self.options`.

    Args:
        reduction: "sum_over_batch_size" (the default: the weighted sum divided by the number of
            values), "mean" (the same), "mean_with_sample_weight" (divided by the sum of the sample
            weights), "sum", or "none"/None for the unreduced values.
        name: the name shown in logs.

    A mask on `y_pred` (from a Masking or Embedding(mask_zero=True) layer) drops the masked
    positions; averaging reductions then average over the unmasked ones.

    Example:
        >>> loss = lamina.losses.MeanSquaredError(reduction="sum")
        >>> loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.5000)
    """

    fn = None

    def __init__(self, reduction="sum_over_batch_size", name=None):
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: `reduction` must be one of {list(REDUCTIONS)}. "
                f"Received: reduction={reduction!r}"
            )
        self.reduction = reduction
        self.name = name or to_snake_case(type(self).__name__)
        self.options = {}

    def call(self, y_true, y_pred):
        """Per-sample losses, after Keras' rank matching of targets and outputs."""
        y_true, y_pred = match_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self.options)

    def __call__(self, y_true, y_pred, sample_weight=None):
        output_mask = getattr(y_pred, "_lamina_mask", None)
        y_pred = _as_prediction(y_pred)
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        losses = self.call(y_true, y_pred)
        masks = [m for m in (output_mask, getattr(losses, "_lamina_mask", None)) if m is not None]
        mask = None
        if masks:
            mask = masks[0] if len(masks) == 1 else masks[0].bool() & masks[1].bool()
        return reduce_weighted(losses, sample_weight, self.reduction, mask)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self.options}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({options})"


class CustomLoss(Loss):
    """A user function `fn(y_true, y_pred)` returning per-sample (or already reduced) losses."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


def probability_option(loss, name, value):
    """Validate an option that must lie in [0, 1] (label_smoothing, alpha)."""
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{loss}: `{name}` must be a number in [0, 1]. Received: {name}={value!r}")
    return value


def non_negative_option(loss, name, value):
    """Validate an option that must be >= 0 (gamma, delta)."""
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{loss}: `{name}` must be a number >= 0. Received: {name}={value!r}")
    return value


def axis_option(loss, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{loss}: `axis` must be an int. Received: axis={value!r}")
    return value
