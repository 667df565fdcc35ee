"""Metrics with Keras' names: stateful objects that accumulate over an epoch on the device.

`update_state` adds a batch without reading values back to the host; `result()` returns a tensor,
read once per progress refresh or epoch. A custom metric subclasses `Metric` as in Keras 3: its
state comes from `add_variable(shape, initializer, dtype, name)`, updated with `.assign_add`.
"""

from __future__ import annotations

import warnings

import torch

from lamina import losses
from lamina.losses.base import EPSILON
from lamina.utils.config_dicts import from_config_dict, to_config_dict
from lamina.utils.naming import lookup, to_snake_case
from lamina.variables import Variable

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "RootMeanSquaredError", "CosineSimilarity", "LogCoshError",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence",
    "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge", "Precision", "Recall", "AUC",
    "TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "PrecisionAtRecall",
    "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity", "F1Score",
    "FBetaScore", "R2Score", "get", "serialize", "deserialize",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
]


class Metric:
    """Base class. Subclasses define `update_state`, `result` and, for state kept outside
    `add_variable`, `reset_state`."""

    # The accumulator attributes (tensors) that data-parallel training sums across processes.
    state_names: tuple = ()

    def __init__(self, name=None, dtype=None):
        self.name = name or to_snake_case(type(self).__name__)
        self._dtype = dtype
        self._variables = []

    @property
    def dtype(self):
        return self._dtype or "float32"

    @property
    def variables(self) -> list:
        return list(getattr(self, "_variables", []))

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """A state tensor (Keras 3's custom-metric API) with `.assign`, `.assign_add`, `.value`;
        `reset_state()` zeros it."""
        if not hasattr(self, "_variables"):
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before add_variable().")
        variable = Variable(initializer, shape=tuple(shape), dtype=dtype or self.dtype, trainable=False,
                            name=name or f"variable_{len(self.variables)}")
        self._variables.append(variable)
        return variable

    def add_weight(self, name=None, shape=(), initializer="zeros", dtype=None, aggregation="sum"):
        """Keras 2's name for add_variable, still accepted by Keras 3."""
        return self.add_variable(shape, initializer, dtype=dtype, aggregation=aggregation, name=name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def reset_state(self) -> None:
        for variable in self.variables:
            variable.assign(torch.zeros_like(variable))

    def __call__(self, *args, **kwargs):
        """As Keras: add the batch to the state and return the result so far."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Mean(Metric):
    """Weighted mean of the values seen."""

    state_names = ("total", "count")

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)
        self.reset_state()

    def reset_state(self):
        # On the device the state is on: a compiled step (jit_compile=True) would otherwise see
        # a CPU state at each epoch's start and compile a graph for it.
        device = self.total.device if hasattr(self, "total") else None
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def update_state(self, values, sample_weight=None):
        values = torch.as_tensor(values).detach()
        if self.total.device != values.device:
            self.total, self.count = self.total.to(values.device), self.count.to(values.device)
        if sample_weight is None:
            self.total += values.sum()
            self.count += values.numel()
            return
        if values.ndim == 0 and isinstance(sample_weight, (int, float)):
            # A batch's mean loss weighted by its size, every training step: three small ops, not
            # five. Not `total.add_(values, alpha=...)`: torch.compile (2.13) drops that update of a
            # float64 scalar on the CPU (its analysis restarts and loses the in-place call).
            self.total += values * sample_weight
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


class Sum(Mean):
    """Weighted sum of the values seen."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name, dtype)

    def result(self):
        return self.total.float()


class RootMeanSquaredError(Mean):
    """`sqrt` of the weighted mean squared error over every element seen."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        y_true = y_true.reshape(y_pred.shape) if y_true.numel() == y_pred.numel() else y_true
        super().update_state((y_pred - y_true.to(y_pred.dtype)).square(), sample_weight)

    def result(self):
        return super().result().sqrt()


def _as_tensors(y_true, y_pred):
    """Targets and predictions as tensors on the prediction's device (Keras takes numpy too)."""
    y_pred = torch.as_tensor(y_pred).detach()
    if not y_pred.is_floating_point():
        y_pred = y_pred.float()
    return torch.as_tensor(y_true, device=y_pred.device), y_pred


class MeanMetricWrapper(Mean):
    """The weighted mean of `fn(y_true, y_pred)` per sample."""

    def __init__(self, fn, name=None, dtype=None, **options):
        super().__init__(name=name or fn.__name__, dtype=dtype)
        self.fn, self.options = fn, options

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        values = self.fn(y_true, y_pred, **self.options)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(sample_weight, device=values.device)
            while sample_weight.ndim > values.ndim and sample_weight.shape[-1] == 1:
                sample_weight = sample_weight.squeeze(-1)
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **self.options}


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


def _wrapper(class_name, name, fn, **defaults):
    """A MeanMetricWrapper subclass with Keras' class name, default name and options."""
    def __init__(self, name=name, dtype=None, **options):
        unknown = set(options) - set(defaults)
        if unknown:
            raise TypeError(f"{class_name}: unexpected argument(s) {sorted(unknown)}; it takes "
                            f"name, dtype{''.join(', ' + k for k in defaults)}.")
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **{**defaults, **options})

    return type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "__module__": __name__})


def _accuracy(y_true, y_pred):
    return (y_true.reshape(y_pred.shape) == y_pred).to(torch.float32).mean(dim=-1)


def _loss(name, sign=1.0):
    """Loss function `name` of lamina.losses, per sample, as a metric function."""
    loss = getattr(losses, name)

    def fn(y_true, y_pred, **options):
        return sign * loss(y_true, y_pred, **options)

    fn.__name__ = name
    return fn


BinaryAccuracy = _wrapper("BinaryAccuracy", "binary_accuracy", binary_accuracy, threshold=0.5)
CategoricalAccuracy = _wrapper("CategoricalAccuracy", "categorical_accuracy", categorical_accuracy)
SparseCategoricalAccuracy = _wrapper("SparseCategoricalAccuracy", "sparse_categorical_accuracy",
                                     sparse_categorical_accuracy)
TopKCategoricalAccuracy = _wrapper("TopKCategoricalAccuracy", "top_k_categorical_accuracy",
                                   top_k_categorical_accuracy, k=5)
SparseTopKCategoricalAccuracy = _wrapper("SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy",
                                         sparse_top_k_categorical_accuracy, k=5)
Accuracy = _wrapper("Accuracy", "accuracy", _accuracy)
MeanSquaredError = _wrapper("MeanSquaredError", "mean_squared_error", _loss("mean_squared_error"))
MeanAbsoluteError = _wrapper("MeanAbsoluteError", "mean_absolute_error", _loss("mean_absolute_error"))
MeanAbsolutePercentageError = _wrapper("MeanAbsolutePercentageError", "mean_absolute_percentage_error",
                                       _loss("mean_absolute_percentage_error"))
MeanSquaredLogarithmicError = _wrapper("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
                                       _loss("mean_squared_logarithmic_error"))
# Keras' metric is the similarity itself; its loss is the negative.
CosineSimilarity = _wrapper("CosineSimilarity", "cosine_similarity", _loss("cosine_similarity", -1.0),
                            axis=-1)
LogCoshError = _wrapper("LogCoshError", "logcosh", _loss("log_cosh"))
BinaryCrossentropy = _wrapper("BinaryCrossentropy", "binary_crossentropy", _loss("binary_crossentropy"),
                              from_logits=False, label_smoothing=0.0)
CategoricalCrossentropy = _wrapper("CategoricalCrossentropy", "categorical_crossentropy",
                                   _loss("categorical_crossentropy"), from_logits=False,
                                   label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _wrapper("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                         _loss("sparse_categorical_crossentropy"), from_logits=False,
                                         ignore_class=None, axis=-1)
KLDivergence = _wrapper("KLDivergence", "kl_divergence", _loss("kl_divergence"))
Poisson = _wrapper("Poisson", "poisson", _loss("poisson"))
Hinge = _wrapper("Hinge", "hinge", _loss("hinge"))
SquaredHinge = _wrapper("SquaredHinge", "squared_hinge", _loss("squared_hinge"))
CategoricalHinge = _wrapper("CategoricalHinge", "categorical_hinge", _loss("categorical_hinge"))


def _threshold_list(thresholds, default=0.5) -> list:
    thresholds = default if thresholds is None else thresholds
    values = [thresholds] if isinstance(thresholds, (int, float)) else list(thresholds)
    if not values or any(not 0.0 <= float(t) <= 1.0 for t in values):
        raise ValueError(f"`thresholds` must be in [0, 1]. Received: thresholds={thresholds}")
    return [float(t) for t in values]


def _even_thresholds(num_thresholds: int, eps: float) -> list:
    """Keras' evenly spaced thresholds: 0 - eps, 1/(n-1), …, (n-2)/(n-1), 1 + eps."""
    if num_thresholds < 2:
        raise ValueError(f"`num_thresholds` must be > 1. Received: num_thresholds={num_thresholds}")
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0 - eps, *inner, 1.0 + eps]


class _Confusion(Metric):
    """True/false positives/negatives at fixed thresholds, accumulated on the device. A prediction
    counts as positive above a threshold; `class_id` picks one column of multi-label outputs."""

    state_names = ("tp", "fp", "tn", "fn")

    def __init__(self, thresholds, name=None, dtype=None, class_id=None):
        super().__init__(name, dtype)
        self.thresholds = torch.as_tensor(thresholds, dtype=torch.float32)
        self.class_id = class_id
        self.reset_state()

    def reset_state(self):
        n = self.thresholds.numel()
        self.tp, self.fp, self.tn, self.fn = (torch.zeros(n, dtype=torch.float64) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        y_pred = y_pred.float()
        y_true = y_true.reshape(y_pred.shape).bool()
        w = torch.ones_like(y_pred)
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, device=y_pred.device).float()
            w = w * sw.reshape(sw.shape + (1,) * (y_pred.ndim - sw.ndim))
        if self.class_id is not None:
            y_pred, y_true, w = y_pred[..., self.class_id], y_true[..., self.class_id], w[..., self.class_id]
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

    def _per_threshold(self, values):
        """One value per threshold; a scalar for a single threshold (Keras' result shape)."""
        return (values[0] if values.numel() == 1 else values).float()

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds.tolist()}


def _count(class_name, statistic):
    """TruePositives & co.: the weighted count of one confusion-matrix cell per threshold."""
    def __init__(self, thresholds=None, name=None, dtype=None):
        _Confusion.__init__(self, _threshold_list(thresholds), name, dtype)
        self._thresholds_argument = thresholds

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self._thresholds_argument}

    def result(self):
        return self._per_threshold(getattr(self, statistic))

    return type(class_name, (_Confusion,), {"__init__": __init__, "result": result, "get_config": get_config,
                                            "__module__": __name__})


TruePositives = _count("TruePositives", "tp")
FalsePositives = _count("FalsePositives", "fp")
TrueNegatives = _count("TrueNegatives", "tn")
FalseNegatives = _count("FalseNegatives", "fn")


class Precision(_Confusion):
    def __init__(self, thresholds=None, class_id=None, name=None, dtype=None):
        super().__init__(_threshold_list(thresholds), name, dtype, class_id)

    def result(self):
        return self._per_threshold(_divide_no_nan(self.tp, self.tp + self.fp))


class Recall(_Confusion):
    def __init__(self, thresholds=None, class_id=None, name=None, dtype=None):
        super().__init__(_threshold_list(thresholds), name, dtype, class_id)

    def result(self):
        return self._per_threshold(_divide_no_nan(self.tp, self.tp + self.fn))


class _AtConstraint(_Confusion):
    """The best `dependent` rate among the thresholds whose `constrained` rate reaches `value`
    (0 if none does), over Keras' evenly spaced thresholds."""

    argument = ""  # the name of `value` in Keras' signature

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{type(self).__name__}: `{self.argument}` must be in [0, 1]. "
                             f"Received: {self.argument}={value}")
        if num_thresholds <= 0:
            raise ValueError(f"{type(self).__name__}: `num_thresholds` must be > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        thresholds = [0.5] if num_thresholds == 1 else _even_thresholds(num_thresholds, 1e-7)
        super().__init__(thresholds, name, dtype, class_id)
        self.value, self.num_thresholds = value, num_thresholds

    def _rates(self):
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        return {"recall": _divide_no_nan(tp, tp + fn), "precision": _divide_no_nan(tp, tp + fp),
                "specificity": _divide_no_nan(tn, tn + fp)}

    def _best(self, constrained, dependent):
        feasible = constrained >= self.value
        best = torch.where(feasible, dependent, torch.zeros_like(dependent)).max()
        return torch.where(feasible.any(), best, torch.zeros_like(best)).float()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, self.argument: self.value,
                "num_thresholds": self.num_thresholds, "class_id": self.class_id}


class SensitivityAtSpecificity(_AtConstraint):
    argument = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self):
        rates = self._rates()
        return self._best(rates["specificity"], rates["recall"])


class SpecificityAtSensitivity(_AtConstraint):
    argument = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self):
        rates = self._rates()
        return self._best(rates["recall"], rates["specificity"])


class PrecisionAtRecall(_AtConstraint):
    argument = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self):
        rates = self._rates()
        return self._best(rates["recall"], rates["precision"])


class RecallAtPrecision(_AtConstraint):
    argument = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self):
        rates = self._rates()
        return self._best(rates["precision"], rates["recall"])


class AUC(_Confusion):
    """Area under the ROC (or PR) curve, from `num_thresholds` evenly spaced thresholds.

    As Keras: thresholds are [0 - eps, 1/(n-1), …, 1 + eps] and the ROC area is a trapezoidal
    (Riemann "interpolation") sum over them.
    """

    def __init__(self, num_thresholds=200, curve="ROC", name=None, dtype=None):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: `curve` must be 'ROC' or 'PR'. Received: curve={curve!r}")
        super().__init__(_even_thresholds(num_thresholds, 1e-7), name or "auc", dtype)
        self.curve, self.num_thresholds = curve, num_thresholds

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
                "curve": self.curve}

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


def calibration_inputs(y_true, y_pred):
    """(probabilities (n, classes), labels (n,) int64) from what a classifier predicts: rows of
    class probabilities, or one sigmoid probability per sample ((n,) or (n, 1)), read as the two
    classes [1 - p, p]; and integer labels ((n,) or (n, 1)) or one-hot rows shaped like the
    predictions (None: no labels)."""
    y_pred = torch.as_tensor(y_pred).detach()
    y_pred = y_pred if y_pred.is_floating_point() else y_pred.float()
    if y_pred.ndim == 1 or (y_pred.ndim == 2 and y_pred.shape[-1] == 1):
        p = y_pred.reshape(-1, 1)
        y_pred = torch.cat([1 - p, p], dim=-1)
    if y_pred.ndim != 2:
        raise ValueError("Calibration needs predictions of shape (batch, classes) or one sigmoid "
                         f"probability per sample. Received: y_pred of shape {tuple(y_pred.shape)}")
    if y_true is None:
        return y_pred, None
    y_true = torch.as_tensor(y_true, device=y_pred.device)
    if y_true.ndim == 2 and y_true.shape[-1] == y_pred.shape[-1] > 1:
        y_true = y_true.argmax(-1)  # one-hot
    y_true = y_true.reshape(-1)
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"Calibration: {y_true.shape[0]} labels for {y_pred.shape[0]} predictions.")
    return y_pred, y_true.long()


class ExpectedCalibrationError(Metric):
    """Top-label expected calibration error (Guo et al. 2017) over equal-width confidence bins.

    Each sample's confidence is its largest predicted probability; the bins split [0, 1] into
    `num_bins` intervals (lo, hi] (the first includes 0). ECE is the weighted mean over bins of
    |accuracy - mean confidence|, i.e. sum over bins of |sum(w * correct) - sum(w * confidence)|
    divided by sum(w). 15 bins as Guo et al. and torchmetrics' MulticlassCalibrationError (which
    bins as [lo, hi) and puts a confidence of exactly 1 in a bin of its own; otherwise the same).

    Args:
        num_bins: number of equal-width bins.

    Inputs: `y_pred` probabilities (batch, classes), or one sigmoid probability per sample;
    `y_true` integer labels or one-hot rows; `sample_weight` one weight per sample.

    Example:
        >>> m = ExpectedCalibrationError(num_bins=10)
        >>> m.update_state([0, 1], [[0.9, 0.1], [0.7, 0.3]])
        >>> round(float(m.result()), 4)  # bin (0.8, 0.9]: right at 0.9; (0.6, 0.7]: wrong at 0.7
        0.4
    """

    state_names = ("bin_weight", "bin_confidence", "bin_correct")

    def __init__(self, num_bins=15, name="expected_calibration_error", dtype=None):
        if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
            raise ValueError(f"ExpectedCalibrationError: `num_bins` must be a positive int. "
                             f"Received: num_bins={num_bins!r}")
        super().__init__(name, dtype)
        self.num_bins = num_bins
        self.reset_state()

    def reset_state(self):
        self.bin_weight, self.bin_confidence, self.bin_correct = (
            torch.zeros(self.num_bins, dtype=torch.float64) for _ in range(3))

    def update_state(self, y_true, y_pred, sample_weight=None):
        probabilities, labels = calibration_inputs(y_true, y_pred)
        confidence, predicted = probabilities.to(torch.float64).max(-1)
        correct = (predicted == labels).to(torch.float64)
        w = torch.ones_like(confidence)
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight, device=confidence.device).to(torch.float64).reshape(-1)
            w = torch.broadcast_to(w, confidence.shape)
        inner_edges = torch.linspace(0, 1, self.num_bins + 1, dtype=torch.float64,
                                     device=confidence.device)[1:-1]
        bins = torch.bucketize(confidence, inner_edges)  # right=False: bin i is (edge i, edge i+1]
        if self.bin_weight.device != confidence.device:
            for key in self.state_names:
                setattr(self, key, getattr(self, key).to(confidence.device))
        self.bin_weight.index_add_(0, bins, w)
        self.bin_confidence.index_add_(0, bins, w * confidence)
        self.bin_correct.index_add_(0, bins, w * correct)

    def result(self):
        total = self.bin_weight.sum()
        gap = (self.bin_correct - self.bin_confidence).abs().sum()
        return _divide_no_nan(gap, total).float()

    def bins(self) -> dict:
        """Per bin, as numpy: `edges` (num_bins + 1), `weight` (the samples' total weight),
        `confidence` and `accuracy` (weighted means; NaN for an empty bin) — a reliability
        diagram's data."""
        weight = self.bin_weight.cpu()
        empty = weight == 0
        safe = torch.where(empty, torch.ones_like(weight), weight)
        nan = torch.full_like(weight, float("nan"))
        return {"edges": torch.linspace(0, 1, self.num_bins + 1, dtype=torch.float64).numpy(),
                "weight": weight.numpy(),
                "confidence": torch.where(empty, nan, self.bin_confidence.cpu() / safe).numpy(),
                "accuracy": torch.where(empty, nan, self.bin_correct.cpu() / safe).numpy()}

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


class FBetaScore(Metric):
    """F-beta per class of multi-class (one-hot) or multi-label outputs: (1 + β²)·P·R / (β²·P + R).

    Args:
        average: None (one score per class), "micro" (counts pooled over classes), "macro" (mean
            of the class scores) or "weighted" (mean weighted by each class's true count).
        beta: weight of recall against precision.
        threshold: predictions above it are positive; None marks each row's largest output.
    """

    state_names = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("FBetaScore: `average` must be None, 'micro', 'macro' or 'weighted'. "
                             f"Received: average={average!r}")
        if not beta > 0:
            raise ValueError(f"FBetaScore: `beta` must be > 0. Received: beta={beta}")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"FBetaScore: `threshold` must be in (0, 1]. Received: threshold={threshold}")
        super().__init__(name, dtype)
        self.average, self.beta, self.threshold = average, float(beta), threshold
        self.reset_state()

    def reset_state(self):
        for key in self.state_names:
            setattr(self, key, None)  # sized by the first batch's number of classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        y_true, y_pred = y_true.to(torch.float64), y_pred.to(torch.float64)
        if y_pred.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects outputs of shape (batch, classes). "
                             f"Received: {tuple(y_pred.shape)}")
        if self.threshold is None:
            predicted = (y_pred == y_pred.amax(-1, keepdim=True)).to(y_pred.dtype)
        else:
            predicted = (y_pred > self.threshold).to(y_pred.dtype)
        w = torch.ones(len(y_pred), 1, dtype=y_pred.dtype, device=y_pred.device)
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight, device=y_pred.device).to(y_pred.dtype).reshape(-1, 1)
        axis = None if self.average == "micro" else 0

        def total(values):
            values = values * w
            return values.sum() if axis is None else values.sum(0)

        batch = {"true_positives": total(predicted * y_true),
                 "false_positives": total(predicted * (1 - y_true)),
                 "false_negatives": total((1 - predicted) * y_true),
                 "intermediate_weights": total(y_true)}
        for key, value in batch.items():
            old = getattr(self, key)
            setattr(self, key, value if old is None else old + value)

    def result(self):
        if self.true_positives is None:
            return torch.tensor(0.0)
        eps = EPSILON
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision, recall = tp / (tp + fp + eps), tp / (tp + fn + eps)
        b2 = self.beta ** 2
        score = (1 + b2) * precision * recall / (b2 * precision + recall + eps)
        if self.average == "weighted":
            weights = self.intermediate_weights / (self.intermediate_weights.sum() + eps)
            score = (score * weights).sum()
        elif self.average is not None:
            score = score.mean()
        return score.float()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1: the harmonic mean of precision and recall."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class R2Score(Metric):
    """Coefficient of determination 1 - SS_res / SS_tot per output column, aggregated as
    `class_aggregation` says ("uniform_average", "variance_weighted_average" or None); with
    `num_regressors` p > 0 the adjusted R² 1 - (1 - R²)(n - 1)/(n - p - 1)."""

    state_names = ("sum", "squared_sum", "total_mse", "count", "num_samples")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError("R2Score: `class_aggregation` must be None, 'uniform_average' or "
                             f"'variance_weighted_average'. Received: {class_aggregation!r}")
        if num_regressors < 0:
            raise ValueError(f"R2Score: `num_regressors` must be >= 0. Received: {num_regressors}")
        super().__init__(name, dtype)
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.reset_state()

    def reset_state(self):
        self.sum = self.squared_sum = self.total_mse = self.count = None
        self.num_samples = torch.zeros((), dtype=torch.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        y_true, y_pred = y_true.to(torch.float64), y_pred.to(torch.float64)
        if y_pred.ndim == 1:
            y_pred = y_pred.unsqueeze(1)
        y_true = y_true.reshape(y_pred.shape)
        w = torch.ones(len(y_pred), 1, dtype=y_pred.dtype, device=y_pred.device)
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight, device=y_pred.device).to(y_pred.dtype).reshape(len(y_pred), -1)
        w = torch.broadcast_to(w, y_true.shape)
        batch = {"sum": (y_true * w).sum(0), "squared_sum": (y_true * y_true * w).sum(0),
                 "total_mse": ((y_true - y_pred).square() * w).sum(0), "count": w.sum(0)}
        for key, value in batch.items():
            old = getattr(self, key)
            setattr(self, key, value if old is None else old + value)
        self.num_samples = self.num_samples.to(y_pred.device) + y_true.numel()  # Keras counts elements

    def result(self):
        if self.sum is None:
            return torch.tensor(0.0)
        mean = self.sum / self.count
        total = self.squared_sum - self.sum * mean
        raw = 1 - self.total_mse / total
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            r2 = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            r2 = (total * raw).sum() / total.sum()
        else:
            r2 = raw
        n, p = float(self.num_samples), self.num_regressors
        if p and p < n - 1:
            r2 = 1 - (1 - r2) * (n - 1) / (n - p - 1)
        return r2.float()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


class IoU(Metric):
    """Intersection over union, TP / (TP + FP + FN) per class from a weighted confusion matrix,
    averaged over `target_class_ids` (classes never seen nor predicted are left out).

    Args:
        num_classes: the number of classes; ids outside [0, num_classes) are ignored.
        target_class_ids: the classes whose IoU is averaged.
        ignore_class: a target id to leave out (a "void" class).
        sparse_y_true, sparse_y_pred: False for one-hot / score rows (argmax along `axis`).
    """

    state_names = ("total_cm",)

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        target_class_ids = list(target_class_ids)
        if max(target_class_ids, default=-1) >= num_classes or min(target_class_ids, default=0) < 0:
            raise ValueError(f"{type(self).__name__}: `target_class_ids` must be in [0, {num_classes}). "
                             f"Received: target_class_ids={target_class_ids}")
        super().__init__(name, dtype or "int32")  # Keras' default: counts are integers
        self.num_classes, self.target_class_ids = num_classes, target_class_ids
        self.ignore_class = ignore_class
        self.sparse_y_true, self.sparse_y_pred, self.axis = sparse_y_true, sparse_y_pred, axis
        self.reset_state()

    def reset_state(self):
        self.total_cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)

    def _class_ids(self, y_true, y_pred):
        if not self.sparse_y_true:
            y_true = y_true.argmax(self.axis)
        if not self.sparse_y_pred:
            y_pred = y_pred.argmax(self.axis)
        return y_true, y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _as_tensors(y_true, y_pred)
        y_true, y_pred = self._class_ids(y_true, y_pred)
        y_true, y_pred = y_true.reshape(-1).long(), y_pred.reshape(-1).long()
        w = torch.ones((), dtype=torch.float64, device=y_pred.device)
        if sample_weight is not None:
            w = torch.as_tensor(sample_weight, device=y_pred.device).to(torch.float64)
            w = w.reshape(-1) if w.ndim > 1 else w
            if "int" in str(self.dtype) and bool((w != w.trunc()).any()):
                # Keras counts in the metric's dtype, int by default: fractional weights truncate.
                warnings.warn(f"{type(self).__name__}: sample weights are truncated to integers in "
                              f"dtype {self.dtype} (as Keras does); pass dtype='float32' to keep them.",
                              stacklevel=2)
                w = w.trunc()
        w = torch.broadcast_to(w, y_true.shape)
        keep = (y_true >= 0) & (y_true < self.num_classes) & (y_pred >= 0) & (y_pred < self.num_classes)
        if self.ignore_class is not None:
            keep &= y_true != self.ignore_class
        cells = (y_true * self.num_classes + y_pred)[keep]
        counts = torch.bincount(cells, weights=w[keep], minlength=self.num_classes ** 2)
        self.total_cm = self.total_cm.to(y_pred.device) + counts.reshape(self.num_classes, self.num_classes)

    def result(self):
        tp = self.total_cm.diagonal()
        denominator = self.total_cm.sum(0) + self.total_cm.sum(1) - tp
        ids = torch.as_tensor(self.target_class_ids, device=tp.device)
        tp, denominator = tp[ids], denominator[ids]
        valid = (denominator > 1e-9).sum()
        iou = tp / (denominator + EPSILON)
        return (iou.sum() / (valid + EPSILON)).float()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class MeanIoU(IoU):
    """IoU averaged over every class."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, range(num_classes), name, dtype, ignore_class, sparse_y_true,
                         sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1 for one probability (or logit) per sample, class 1 at or above
    `threshold`."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name, dtype)
        self.threshold = threshold

    def _class_ids(self, y_true, y_pred):
        return y_true, (y_pred >= self.threshold).long()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "target_class_ids": self.target_class_ids,
                "threshold": self.threshold}


class OneHotIoU(IoU):
    """IoU for one-hot targets and score rows."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis)


class OneHotMeanIoU(MeanIoU):
    """MeanIoU for one-hot targets and score rows."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)


__all__ += ["IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU", "ExpectedCalibrationError"]


_CLASSES = {name: globals()[name] for name in __all__ if name[0].isupper()}
# Keras' string identifiers: every class name and its snake_case, the metric functions' names,
# and the short aliases. A string names the metric in the logs as it was written.
_NAMES = {**_CLASSES, **{to_snake_case(name): cls for name, cls in _CLASSES.items()}}
_NAMES.update({
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSE": MeanSquaredError, "MAE": MeanAbsoluteError,
    "MAPE": MeanAbsolutePercentageError, "MSLE": MeanSquaredLogarithmicError,
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy, "acc": Accuracy,
    "auc": AUC, "r2_score": R2Score, "f1_score": F1Score, "fbeta_score": FBetaScore,
    "kl_divergence": KLDivergence, "log_cosh_error": LogCoshError, "logcosh": LogCoshError,
    "ece": ExpectedCalibrationError,
})
for _metric_class in (MeanMetricWrapper, Metric, Mean, Sum):
    _NAMES.pop(_metric_class.__name__, None)
    _NAMES.pop(to_snake_case(_metric_class.__name__), None)


def serialize(metric) -> dict:
    """Keras' config dict of a metric object."""
    return to_config_dict(metric, "keras.metrics", _CLASSES)


def deserialize(config, custom_objects=None) -> Metric:
    """A metric from `serialize`'s dict (Keras' format)."""
    return from_config_dict("metric", config, _CLASSES, custom_objects)


def get(identifier, y_true=None, y_pred=None, loss=None) -> Metric:
    """A Metric from a Keras name or object. "accuracy" is resolved from the shapes, as Keras does:
    binary if the output has one unit, sparse categorical if the targets are integer labels,
    categorical otherwise."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
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
