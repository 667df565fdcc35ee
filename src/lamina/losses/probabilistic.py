"""Cross-entropies (binary, categorical, sparse, focal), KL divergence and Poisson.

When `y_pred` comes from a softmax or sigmoid that a lamina layer applied, the cross-entropies use
the logits it kept (log-softmax / log-sigmoid): the same value as Keras' clipped-probability
formula wherever clipping does not bite, and finite with correct gradients where it would
saturate. `from_logits=True` says that `y_pred` itself holds logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina.losses.base import (
    EPSILON,
    Loss,
    _logits_of,
    axis_option,
    non_negative_option,
    probability_option,
)

__all__ = [
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson",
    "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
    "categorical_focal_crossentropy", "sparse_categorical_crossentropy", "kl_divergence", "poisson",
]


# An int64 label no dataset uses: nll_loss's ignore_index when nothing is to be ignored.
NO_CLASS = -(2**63)


def _same_shape(loss, y_true, y_pred):
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss}: targets and outputs must have the same shape, but the targets have shape "
            f"{tuple(y_true.shape)} and the outputs {tuple(y_pred.shape)}. "
            "lamina.losses.check(y_true, y_pred, loss) explains which loss fits these targets."
        )


def _binary_terms(y_true, y_pred, from_logits):
    """Per-element binary cross-entropy and the probability of class 1."""
    logits = y_pred if from_logits else _logits_of(y_pred, "sigmoid")
    if logits is not None:
        return F.binary_cross_entropy_with_logits(logits, y_true, reduction="none"), torch.sigmoid(logits)
    clipped = y_pred.clamp(EPSILON, 1.0 - EPSILON)
    return F.binary_cross_entropy(clipped, y_true, reduction="none"), y_pred


def _log_probabilities(y_pred, from_logits, axis):
    """Log-probabilities along the class axis: log_softmax of the logits when they are known,
    otherwise Keras' way (normalize to sum 1, clip to [EPSILON, 1 - EPSILON], log)."""
    logits = y_pred if from_logits else _logits_of(y_pred, "softmax", axis)
    if logits is not None:
        return torch.log_softmax(logits, dim=axis)
    return torch.log((y_pred / y_pred.sum(dim=axis, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON))


def _smooth_binary(y_true, label_smoothing):
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _smooth_categorical(y_true, label_smoothing, num_classes):
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + label_smoothing / num_classes


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """`-(y log p + (1 - y) log(1 - p))`, averaged over `axis`.

    Targets are 0/1 labels or probabilities, shaped like the output. `label_smoothing` squeezes
    them towards 0.5: `y * (1 - s) + s / 2`.
    """
    y_true = _smooth_binary(y_true.to(y_pred.dtype), label_smoothing)
    _same_shape("binary_crossentropy", y_true, y_pred)
    return _binary_terms(y_true, y_pred, from_logits)[0].mean(dim=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy scaled by `(1 - p_t) ** gamma` (Lin et al., 2017), averaged over `axis`.

    `p_t` is the probability given to the true label, so confident correct predictions count
    less. With `apply_class_balancing`, class 1 is also weighted by `alpha` and class 0 by
    `1 - alpha`.
    """
    y_true = _smooth_binary(y_true.to(y_pred.dtype), label_smoothing)
    _same_shape("binary_focal_crossentropy", y_true, y_pred)
    bce, p = _binary_terms(y_true, y_pred, from_logits)
    p_true = y_true * p + (1.0 - y_true) * (1.0 - p)
    focal = (1.0 - p_true).pow(gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(dim=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """`-sum(y * log p)` over the class `axis`; targets are one-hot rows (or class probabilities).

    `label_smoothing` s gives the true class `1 - s + s / k` and the others `s / k`, with k the
    size of the class axis.
    """
    y_true = _smooth_categorical(y_true.to(y_pred.dtype), label_smoothing, y_pred.shape[axis])
    _same_shape("categorical_crossentropy", y_true, y_pred)
    return -(y_true * _log_probabilities(y_pred, from_logits, axis)).sum(dim=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """`-sum(alpha * (1 - p) ** gamma * y * log p)` over the class `axis` (Lin et al., 2017).

    `alpha` is one number or one weight per class.
    """
    y_true = _smooth_categorical(y_true.to(y_pred.dtype), label_smoothing, y_pred.shape[axis])
    _same_shape("categorical_focal_crossentropy", y_true, y_pred)
    log_p = _log_probabilities(y_pred, from_logits, axis)
    p = log_p.exp()
    alpha = torch.as_tensor(alpha, dtype=y_pred.dtype, device=y_pred.device)
    if alpha.ndim:  # one weight per class, laid along the class axis
        alpha = alpha.reshape([-1 if d == axis % y_pred.ndim else 1 for d in range(y_pred.ndim)])
    return -(alpha * (1.0 - p).pow(gamma) * y_true * log_p).sum(dim=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """`-log p[label]`: targets are integer class labels, one per sample (shape (n,) or (n, 1)).

    Labels equal to `ignore_class` contribute nothing, and the averaging reductions skip them.
    """
    if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    labels = y_true.long()
    log_p = _log_probabilities(y_pred, from_logits, axis).movedim(axis, -1)
    if labels.shape != log_p.shape[:-1]:
        raise ValueError(
            "sparse_categorical_crossentropy: expected one integer label per sample, shaped like "
            f"the outputs without their class axis {tuple(log_p.shape[:-1])}, but the targets have "
            f"shape {tuple(y_true.shape)}. For one-hot targets use categorical_crossentropy."
        )
    # nll_loss picks -log_p[label] in one kernel each way (gather, negate and squeeze are three),
    # and gives 0 where the label is its ignore_index: `ignore_class`, else a value no label has
    # (its default, -100, would silently zero a label of -100 instead of raising).
    ignore = NO_CLASS if ignore_class is None else ignore_class
    loss = F.nll_loss(log_p.reshape(-1, log_p.shape[-1]), labels.reshape(-1), reduction="none",
                      ignore_index=ignore).reshape(labels.shape)
    if ignore_class is not None:
        loss._lamina_mask = labels != ignore_class
    return loss


def kl_divergence(y_true, y_pred):
    """`sum(y * log(y / p))` over the last axis; both clipped to [EPSILON, 1] as Keras does (the
    output's logits are used instead when a softmax produced it)."""
    y_true = y_true.to(y_pred.dtype).clamp(EPSILON, 1.0)
    logits = _logits_of(y_pred, "softmax")
    log_q = torch.log_softmax(logits, -1) if logits is not None else torch.log(y_pred.clamp(EPSILON, 1.0))
    return (y_true * (torch.log(y_true) - log_q)).sum(dim=-1)


def poisson(y_true, y_pred):
    """`mean(p - y * log(p + EPSILON))` over the last axis; targets are counts, outputs rates > 0."""
    y_true = y_true.to(y_pred.dtype)
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1)


def _crossentropy_options(loss, from_logits, label_smoothing, axis):
    return {"from_logits": bool(from_logits),
            "label_smoothing": probability_option(loss, "label_smoothing", label_smoothing),
            "axis": axis_option(loss, axis)}


class BinaryCrossentropy(Loss):
    """Cross-entropy for 0/1 targets: binary tasks (one sigmoid unit) and multi-label tasks (one
    sigmoid unit per label).

    Args:
        from_logits: whether `y_pred` holds logits. Not needed after a lamina sigmoid layer: its
            logits are used anyway.
        label_smoothing: in [0, 1]; targets become `y * (1 - s) + s / 2`.
        axis: the axis averaged over.
        reduction, name: see `Loss`.

    Example:
        >>> loss = BinaryCrossentropy()
        >>> loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.4, 0.6]]))
        tensor(0.5108)
    """

    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.options = _crossentropy_options("BinaryCrossentropy", from_logits, label_smoothing, axis)


class BinaryFocalCrossentropy(Loss):
    """Binary cross-entropy that down-weights easy examples by `(1 - p_t) ** gamma`.

    Args:
        apply_class_balancing: weight class 1 by `alpha` and class 0 by `1 - alpha`.
        alpha: in [0, 1], the class-1 weight when balancing.
        gamma: >= 0; 0 gives plain binary cross-entropy.
        from_logits, label_smoothing, axis, reduction, name: as in `BinaryCrossentropy`.

    Example:
        >>> loss = BinaryFocalCrossentropy(gamma=2.0)
        >>> loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.4, 0.6]]))
        tensor(0.0817)
    """

    fn = staticmethod(binary_focal_crossentropy)

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        who = "BinaryFocalCrossentropy"
        super().__init__(reduction, name)
        self.options = dict(
            apply_class_balancing=bool(apply_class_balancing),
            alpha=probability_option(who, "alpha", alpha),
            gamma=non_negative_option(who, "gamma", gamma),
            **_crossentropy_options(who, from_logits, label_smoothing, axis))


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot targets (or class probabilities) over k softmax units.

    Args:
        from_logits: whether `y_pred` holds logits. Not needed after a lamina softmax layer: its
            logits are used anyway.
        label_smoothing: in [0, 1]; the true class gets `1 - s + s / k`, the others `s / k`.
        axis: the class axis.
        reduction, name: see `Loss`.

    Example:
        >>> loss = CategoricalCrossentropy()
        >>> loss(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.05, 0.95, 0.0]]))
        tensor(0.0513)
    """

    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.options = _crossentropy_options("CategoricalCrossentropy", from_logits, label_smoothing,
                                             axis)


class CategoricalFocalCrossentropy(Loss):
    """Categorical cross-entropy that down-weights easy examples by `alpha * (1 - p) ** gamma`.

    Args:
        alpha: one weight for all classes, or a list with one weight per class.
        gamma: >= 0; 0 with alpha=1 gives plain categorical cross-entropy.
        from_logits, label_smoothing, axis, reduction, name: as in `CategoricalCrossentropy`.

    Example:
        >>> loss = CategoricalFocalCrossentropy()
        >>> loss(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.05, 0.9, 0.05]]))
        tensor(0.0003)
    """

    fn = staticmethod(categorical_focal_crossentropy)

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        who = "CategoricalFocalCrossentropy"
        if isinstance(alpha, (list, tuple)):
            alpha = [non_negative_option(who, "alpha", a) for a in alpha]
        else:
            non_negative_option(who, "alpha", alpha)
        super().__init__(reduction, name)
        self.options = dict(alpha=alpha, gamma=non_negative_option(who, "gamma", gamma),
                            **_crossentropy_options(who, from_logits, label_smoothing, axis))


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer class labels (shape (n,) or (n, 1)) over k softmax units.

    Args:
        from_logits: whether `y_pred` holds logits. Not needed after a lamina softmax layer.
        ignore_class: a label value (e.g. -1 or 255 for "void") whose positions are left out.
        axis: the class axis.
        reduction, name: see `Loss`.

    Example:
        >>> loss = SparseCategoricalCrossentropy()
        >>> loss(torch.tensor([1, 2]), torch.tensor([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]))
        tensor(1.1769)
    """

    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, ignore_class=None, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        if ignore_class is not None and not isinstance(ignore_class, int):
            raise ValueError(
                "SparseCategoricalCrossentropy: `ignore_class` must be an int label or None. "
                f"Received: ignore_class={ignore_class!r}"
            )
        super().__init__(reduction, name)
        self.options = dict(from_logits=bool(from_logits), ignore_class=ignore_class,
                            axis=axis_option("SparseCategoricalCrossentropy", axis))


class KLDivergence(Loss):
    """Kullback-Leibler divergence `sum(y * log(y / p))` between target and predicted distributions.

    Example:
        >>> KLDivergence()(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.9, 0.1]]))
        tensor(0.5108)
    """

    fn = staticmethod(kl_divergence)


class Poisson(Loss):
    """Poisson negative log-likelihood `p - y * log(p)` for count targets and positive rates.

    Example:
        >>> Poisson()(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(1.0000)
    """

    fn = staticmethod(poisson)
