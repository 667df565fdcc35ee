"""How far to trust a classifier's probabilities: negative log-likelihood, expected calibration
error, and temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks").

    from lamina.calibration import TemperatureScaling, expected_calibration_error, negative_log_likelihood

    scaled = TemperatureScaling(model).fit(x_val, y_val)   # one temperature T, by NLL on held-out data
    p = scaled.predict(x_test)                             # softmax(log p / T)
    negative_log_likelihood(y_test, p), expected_calibration_error(y_test, p)

Everything here takes probabilities, as `predict` returns them (so also an ensemble's average or a
`predict_mc` mean): log p differs from the logits by one constant per row, which softmax ignores,
so softmax(log p / T) = softmax(logits / T). Sums are taken in float64. The streaming form of the
ECE, for `compile(metrics=[...])`, is `lamina.metrics.ExpectedCalibrationError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lamina.metrics import ExpectedCalibrationError, calibration_inputs

# A float32 probability below this has underflowed (a softmax gives 0 there): its log is floored
# here so that a confident mistake costs about 87 nats instead of an infinite NLL.
PROBABILITY_FLOOR = float(torch.finfo(torch.float32).tiny)
# The temperatures fit_temperature searches. On data the model gets all right the NLL keeps falling
# as T -> 0, so the search needs an end; since the NLL has one minimum in log T, the fitted value
# is the best temperature within these bounds.
TEMPERATURE_RANGE = (1e-2, 1e2)


def _checked(y_true, probabilities, sample_weight=None):
    """(probabilities (n, k) float64, labels (n,), weights (n,) float64), validated."""
    p, labels = calibration_inputs(y_true, probabilities)
    p = p.to(torch.float64)
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or bool((p > 1).any()):
        raise ValueError("Calibration: `probabilities` must be finite and in [0, 1] (a softmax or "
                         "sigmoid output); logits must go through a softmax first.")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= p.shape[-1]):
        raise ValueError(f"Calibration: labels must be in [0, {p.shape[-1]}) for {p.shape[-1]} classes. "
                         f"Received labels from {int(labels.min())} to {int(labels.max())}.")
    if sample_weight is None:
        w = torch.ones(len(labels), dtype=torch.float64)
    else:
        w = torch.as_tensor(np.asarray(sample_weight), dtype=torch.float64).reshape(-1)
        if w.shape != labels.shape or bool((w < 0).any()):
            raise ValueError(f"Calibration: `sample_weight` must be {len(labels)} non-negative values. "
                             f"Received shape {tuple(w.shape)}.")
    return p, labels, w


def _log(p):
    return p.clamp_min(PROBABILITY_FLOOR).log()


def negative_log_likelihood(y_true, probabilities, sample_weight=None) -> float:
    """Mean of -log p[label] (nats), weighted by `sample_weight`; labels integer or one-hot."""
    p, labels, w = _checked(y_true, probabilities, sample_weight)
    return float((F.nll_loss(_log(p), labels, reduction="none") * w).sum() / w.sum())


def expected_calibration_error(y_true, probabilities, num_bins=15, sample_weight=None) -> float:
    """Top-label ECE over `num_bins` equal-width bins; see `lamina.metrics.ExpectedCalibrationError`."""
    p, labels, w = _checked(y_true, probabilities, sample_weight)
    metric = ExpectedCalibrationError(num_bins)
    metric.update_state(labels, p, w)
    return float(metric.result())


def scale(probabilities, temperature) -> np.ndarray:
    """softmax(log p / T) row by row (for one sigmoid probability per sample: sigmoid(logit / T)),
    as float32 in the shape given."""
    if not temperature > 0:
        raise ValueError(f"scale: `temperature` must be > 0. Received: temperature={temperature!r}")
    given = np.asarray(probabilities)
    p, _ = calibration_inputs(None, given)
    scaled = torch.softmax(_log(p.to(torch.float64)) / temperature, dim=-1)
    if given.ndim == 1 or given.shape[-1] == 1:
        scaled = scaled[:, 1]
    return scaled.reshape(given.shape).numpy().astype(np.float32)


def fit_temperature(y_true, probabilities, sample_weight=None) -> float:
    """The temperature T that minimises the NLL of softmax(log p / T) on these (held-out) data:
    L-BFGS over log T in float64, within TEMPERATURE_RANGE."""
    p, labels, w = _checked(y_true, probabilities, sample_weight)
    log_p = _log(p)
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def nll():
        optimizer.zero_grad()
        # Clamped, the NLL is flat beyond the range, so L-BFGS stops at the end it runs into.
        inverse = torch.exp(-log_t.clamp(low, high))
        loss = (F.cross_entropy(log_p * inverse, labels, reduction="none") * w).sum() / w.sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(nll)
    return float(math.exp(min(max(float(log_t.detach()), low), high)))


class TemperatureScaling:
    """A classifier's predictions divided by one temperature before the softmax.

    Args:
        model: anything with `predict(x)` returning class probabilities (a lamina or Keras model,
            an ensemble).
        temperature: the starting temperature (1: the model's own probabilities).

    Example:
        >>> scaled = TemperatureScaling(model).fit(x_val, y_val)
        >>> scaled.temperature            # > 1 for an overconfident model
        >>> scaled.predict(x_test)        # calibrated probabilities
    """

    def __init__(self, model, temperature=1.0):
        self.model = model
        self.temperature = float(temperature)

    def fit(self, x, y, sample_weight=None, batch_size=None):
        """Fit the temperature on held-out data (not the data the model was trained on)."""
        self.temperature = fit_temperature(y, self.model.predict(x, batch_size=batch_size, verbose=0),
                                           sample_weight)
        return self

    def predict(self, x, batch_size=None):
        return scale(self.model.predict(x, batch_size=batch_size, verbose=0), self.temperature)

    def __repr__(self):
        return f"TemperatureScaling(temperature={self.temperature:.4g})"


__all__ = ["negative_log_likelihood", "expected_calibration_error", "fit_temperature", "scale",
           "TemperatureScaling", "PROBABILITY_FLOOR", "TEMPERATURE_RANGE"]
