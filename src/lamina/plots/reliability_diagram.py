"""Reliability diagrams: per confidence bin, how often the top class is right against how sure the
model was, one panel per way of getting probabilities (softmax, MC dropout, ensemble, temperature-
scaled), with the bins' sample counts below and the expected calibration error in each title."""

from __future__ import annotations

import numpy as np

from lamina.metrics import ExpectedCalibrationError


def reliability(predictions, num_bins=15, title=None):
    """A matplotlib Figure: for each method, the bins' accuracy as bars, the gap to the bins' mean
    confidence shaded, the diagonal of perfect calibration, and a histogram of the samples per bin.

    Args:
        predictions: {label: (y_true, probabilities)}, probabilities as `predict` returns them
            (rows of class probabilities or one sigmoid probability per sample), labels integer or
            one-hot.
        num_bins: equal-width confidence bins, as `lamina.metrics.ExpectedCalibrationError`.
        title: the figure's title.

    Returns:
        matplotlib.figure.Figure.

    Example:
        >>> fig = lamina.plots.reliability({"softmax": (y_test, model.predict(x_test))})
        >>> fig.savefig("reliability.png")
    """
    from matplotlib.figure import Figure

    if not isinstance(predictions, dict) or not predictions:
        raise ValueError("reliability(): `predictions` must be a non-empty dict "
                         "{label: (y_true, probabilities)}.")
    figure = Figure(figsize=(3.3 * len(predictions), 4.4), layout="constrained")
    axes = figure.subplots(2, len(predictions), squeeze=False, sharex=True,
                           gridspec_kw={"height_ratios": (3, 1)})
    for column, (label, (y_true, probabilities)) in enumerate(predictions.items()):
        metric = ExpectedCalibrationError(num_bins)
        metric.update_state(y_true, probabilities)
        bins = metric.bins()
        left, width = bins["edges"][:-1], np.diff(bins["edges"])
        seen = bins["weight"] > 0
        top, bottom = axes[0, column], axes[1, column]
        top.bar(left[seen], bins["accuracy"][seen], width[seen], align="edge", color="tab:blue",
                edgecolor="black", linewidth=0.5, label="accuracy")
        gap_low = np.minimum(bins["accuracy"], bins["confidence"])[seen]
        top.bar(left[seen], np.abs(bins["accuracy"] - bins["confidence"])[seen], width[seen],
                bottom=gap_low, align="edge", facecolor="none", edgecolor="tab:red", hatch="///",
                linewidth=0.8, label="gap to mean confidence")
        top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
        top.set(xlim=(0, 1), ylim=(0, 1), title=f"{label}\nECE {float(metric.result()):.3f}")
        top.set_ylabel("accuracy" if column == 0 else None)
        top.grid(alpha=0.3)
        bottom.bar(left, bins["weight"], width, align="edge", color="gray", edgecolor="black", linewidth=0.5)
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("samples" if column == 0 else None)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    if title:
        figure.suptitle(title)
    return figure
