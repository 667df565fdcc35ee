"""Training curves: the loss and every metric of a fit, per epoch, training next to validation."""

from __future__ import annotations

import math

_COLUMNS = 3


def _logs_of(history):
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(
            "history(): expected the History returned by fit() or its `.history` dict. "
            f"Received: {type(history).__name__}"
        )
    if not logs or not any(len(v) for v in logs.values()):
        raise ValueError("history(): nothing was recorded (no epoch finished); fit for an epoch first.")
    return logs


def history(history):
    """A matplotlib Figure with one panel per quantity of a fit: "loss" and each metric, the
    training values and, when recorded, the validation values (`val_…`) against the epoch.

    Args:
        history: the History that `fit()` returns, or its `.history` dict of lists.

    Returns:
        matplotlib.figure.Figure.

    Example:
        >>> h = model.fit(x, y, validation_split=0.2, epochs=10, verbose=0)
        >>> fig = lamina.plots.history(h)
        >>> [ax.get_title() for ax in fig.axes]
        ['loss', 'accuracy']
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    logs = _logs_of(history)
    quantities = list(dict.fromkeys(k.removeprefix("val_") for k in logs))
    columns = min(_COLUMNS, len(quantities))
    rows = math.ceil(len(quantities) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    recorded_epochs = list(getattr(history, "epoch", []))
    for ax, quantity in zip(axes, quantities):
        for key, label, style in ((quantity, "training", "-"), (f"val_{quantity}", "validation", "--")):
            values = logs.get(key)
            if not values:
                continue
            epochs = ([e + 1 for e in recorded_epochs] if len(recorded_epochs) == len(values)
                      else list(range(1, len(values) + 1)))
            ax.plot(epochs, values, style, marker="o", markersize=3, label=label)
        ax.set_title(quantity)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(quantities):]:
        figure.delaxes(ax)
    return figure
