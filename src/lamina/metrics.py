"""Metrics with Keras' names: stateful objects that accumulate over an epoch on the device.

`update_state` adds a batch without reading values back to the host; `result()` returns a tensor,
read once per progress refresh or epoch.
"""

from __future__ import annotations

import torch

from lamina.utils.naming import lookup, to_snake_case

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "Precision", "Recall", "AUC", "get",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
]


class Metric:
    # The accumulator attributes (tensors) that data-parallel training sums across processes.
    state_names: tuple = ()

    def __init__(self, name=None, dtype=None):
        self.name = name or to_snake_case(type(self).__name__)

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Stateless use: the metric of this batch alone."""
        self.reset_state()
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}


class Mean(Metric):
    """Weighted mean of the values seen."""

    state_names = ("total", "count")

    def __init__(self, name="mean", dtype=None):
        super().__init__(name)
        self.reset_state()

    def reset_state(self):
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def update_state(self, values, sample_weight=None):
        values = torch.as_tensor(values).detach()
        if self.total.device != values.device:
            self.total, self.count = self.total.to(values.device), self.count.to(values.device)
        if sample_weight is None:
            self.total += values.sum()
            self.count += values.numel()
            return
        if values.ndim == 0 and isinstance(sample_weight, (int, float)):
            # A batch's mean loss weighted by its size, every training step: two small ops, not five.
            self.total.add_(values, alpha=sample_weight)
            self.count += sample_weight
            return
        w = torch.as_tensor(sample_weight, device=values.device).to(values.dtype)
        while w.ndim < values.ndim:
            w = w.unsqueeze(-1)
        w = torch.broadcast_to(w, values.shape)
        self.total += (values * w).sum()
        self.count += w.sum()

    def result(self):
        return (self.total / self.count.clamp_min(1e-12)).float() if self.count else self.total.float()


class MeanMetricWrapper(Mean):
    """The weighted mean of `fn(y_true, y_pred)` per sample."""

    def __init__(self, fn, name=None, **options):
        super().__init__(name=name or fn.__name__)
        self.fn, self.options = fn, options

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(torch.as_tensor(y_true, device=y_pred.device), y_pred.detach(),
                         **self.options)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(sample_weight, device=values.device)
            while sample_weight.ndim > values.ndim and sample_weight.shape[-1] == 1:
                sample_weight = sample_weight.squeeze(-1)
        super().update_state(values, sample_weight)


def _squeeze_labels(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true


def binary_accuracy(y_true, y_pred, threshold=0.5):
    hits = (y_pred > threshold).to(y_pred.dtype) == y_true.to(y_pred.dtype).reshape(y_pred.shape)
    return hits.to(torch.float32).mean(dim=-1)


def categorical_accuracy(y_true, y_pred):
    return (y_true.argmax(-1) == y_pred.argmax(-1)).to(torch.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true = _squeeze_labels(y_true, y_pred)
    return (y_true.long() == y_pred.argmax(-1)).to(torch.float32)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true = _squeeze_labels(y_true, y_pred).long()
    k = min(k, y_pred.shape[-1])
    top = y_pred.topk(k, dim=-1).indices
    return (top == y_true.unsqueeze(-1)).any(-1).to(torch.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return sparse_top_k_categorical_accuracy(y_true.argmax(-1), y_pred, k)


def _wrapper(name, fn, **defaults):
    def __init__(self, name=name, dtype=None, **options):
        MeanMetricWrapper.__init__(self, fn, name=name, **{**defaults, **options})

    return type(name.title().replace("_", ""), (MeanMetricWrapper,), {"__init__": __init__})


BinaryAccuracy = _wrapper("binary_accuracy", binary_accuracy, threshold=0.5)
CategoricalAccuracy = _wrapper("categorical_accuracy", categorical_accuracy)
SparseCategoricalAccuracy = _wrapper("sparse_categorical_accuracy", sparse_categorical_accuracy)
TopKCategoricalAccuracy = _wrapper("top_k_categorical_accuracy", top_k_categorical_accuracy, k=5)
SparseTopKCategoricalAccuracy = _wrapper("sparse_top_k_categorical_accuracy",
                                         sparse_top_k_categorical_accuracy, k=5)


def _accuracy(y_true, y_pred):
    return (y_true.reshape(y_pred.shape) == y_pred).to(torch.float32).mean(dim=-1)


Accuracy = _wrapper("accuracy", _accuracy)


def _mse(y_true, y_pred):
    from lamina.losses import mean_squared_error

    return mean_squared_error(y_true, y_pred)


def _mae(y_true, y_pred):
    from lamina.losses import mean_absolute_error

    return mean_absolute_error(y_true, y_pred)


MeanSquaredError = _wrapper("mean_squared_error", _mse)
MeanAbsoluteError = _wrapper("mean_absolute_error", _mae)


class _Confusion(Metric):
    """True/false positives/negatives at fixed thresholds, accumulated on the device."""

    state_names = ("tp", "fp", "tn", "fn")

    def __init__(self, thresholds, name=None):
        super().__init__(name)
        self.thresholds = torch.as_tensor(thresholds, dtype=torch.float32)
        self.reset_state()

    def reset_state(self):
        n = self.thresholds.numel()
        self.tp, self.fp, self.tn, self.fn = (torch.zeros(n, dtype=torch.float64) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = y_pred.detach().float()
        y_true = torch.as_tensor(y_true, device=y_pred.device).reshape(y_pred.shape).bool()
        w = torch.ones_like(y_pred)
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, device=y_pred.device).float()
            w = w * sw.reshape(sw.shape + (1,) * (y_pred.ndim - sw.ndim))
        y_pred, y_true, w = y_pred.reshape(-1, 1), y_true.reshape(-1, 1), w.reshape(-1, 1)
        if self.tp.device != y_pred.device:
            for k in ("tp", "fp", "tn", "fn"):
                setattr(self, k, getattr(self, k).to(y_pred.device))
            self.thresholds = self.thresholds.to(y_pred.device)
        above = y_pred > self.thresholds
        self.tp += ((above & y_true) * w).sum(0)
        self.fp += ((above & ~y_true) * w).sum(0)
        self.fn += ((~above & y_true) * w).sum(0)
        self.tn += ((~above & ~y_true) * w).sum(0)

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds.tolist()}


class Precision(_Confusion):
    def __init__(self, thresholds=0.5, name=None, dtype=None):
        super().__init__([thresholds] if isinstance(thresholds, float) else thresholds, name)

    def result(self):
        p = self.tp / (self.tp + self.fp).clamp_min(1e-12)
        return (p[0] if p.numel() == 1 else p).float()


class Recall(_Confusion):
    def __init__(self, thresholds=0.5, name=None, dtype=None):
        super().__init__([thresholds] if isinstance(thresholds, float) else thresholds, name)

    def result(self):
        r = self.tp / (self.tp + self.fn).clamp_min(1e-12)
        return (r[0] if r.numel() == 1 else r).float()


class AUC(_Confusion):
    """Area under the ROC (or PR) curve, from `num_thresholds` evenly spaced thresholds.

    As Keras: thresholds are [0 - eps, 1/(n-1), …, 1 + eps] and the ROC area is a trapezoidal
    (Riemann "interpolation") sum over them.
    """

    def __init__(self, num_thresholds=200, curve="ROC", name=None, dtype=None):
        if num_thresholds < 2:
            raise ValueError(f"AUC: `num_thresholds` must be > 1. Received: {num_thresholds}")
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: `curve` must be 'ROC' or 'PR'. Received: curve={curve!r}")
        eps = 1e-7
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__([0.0 - eps, *inner, 1.0 + eps], name or "auc")
        self.curve = curve

    def result(self):
        if self.curve == "ROC":
            tpr = self.tp / (self.tp + self.fn).clamp_min(1e-12)
            fpr = self.fp / (self.fp + self.tn).clamp_min(1e-12)
            return ((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2).sum().float()
        # Davis & Goadrich (2006): precision is interpolated along the PR curve between
        # thresholds as a function of the positive count, not linearly in recall.
        tp, fn, positives = self.tp, self.fn, self.tp + self.fp
        d_tp, d_pos = tp[:-1] - tp[1:], positives[:-1] - positives[1:]
        slope = _divide_no_nan(d_tp, d_pos.clamp_min(0))
        intercept = tp[1:] - slope * positives[1:]
        both = (positives[:-1] > 0) & (positives[1:] > 0)
        ratio = torch.where(both, _divide_no_nan(positives[:-1], positives[1:].clamp_min(0)),
                            torch.ones_like(positives[1:]))
        area = _divide_no_nan(slope * (d_tp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp_min(0))
        return area.sum().float()


def _divide_no_nan(a, b):
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


_NAMES = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "precision": Precision, "recall": Recall, "auc": AUC, "accuracy": Accuracy, "acc": Accuracy,
}


def get(identifier, y_true=None, y_pred=None, loss=None) -> Metric:
    """A Metric from a Keras name or object. "accuracy" is resolved from the shapes, as Keras does:
    binary if the output has one unit, sparse categorical if the targets are integer labels,
    categorical otherwise."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    if identifier in ("accuracy", "acc") and y_pred is not None:
        name = identifier
        if y_pred.shape[-1] == 1:
            return BinaryAccuracy(name=name)
        if y_true.ndim < y_pred.ndim or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
            return SparseCategoricalAccuracy(name=name)
        return CategoricalAccuracy(name=name)
    cls = lookup("metric", identifier, _NAMES)
    return cls(name=identifier) if isinstance(identifier, str) else cls()
