"""compile()'s `metrics` and `weighted_metrics` as one metric, "compile_metrics", as in Keras 3.

`model.metrics` lists it beside the loss tracker, so that a custom `train_step` that updates every
metric in `model.metrics` updates the compiled ones too. Only `weighted_metrics` see sample weights
(and so `class_weight`); `metrics` are unweighted, as in Keras.
"""

from __future__ import annotations

import torch

from lamina import metrics as metrics_mod


class CompileMetrics(metrics_mod.Metric):
    """The compiled metrics of every output of `model`, created from the first batch's targets
    and outputs (so that "accuracy" is resolved from their shapes)."""

    def __init__(self, model):
        super().__init__(name="compile_metrics")
        self._model = model

    def _specs(self, y_true=None, y_pred=None):
        specs = self._model._outputs_spec
        if specs is None and y_pred is not None:
            self._model._resolve_outputs(y_true, y_pred)
            specs = self._model._outputs_spec
        return specs or []

    @property
    def metrics(self) -> list:
        return [m for spec in self._specs() for m in spec.metrics]

    def update_state(self, y_true, y_pred, sample_weight=None):
        specs = self._specs(y_true, y_pred)
        flat_pred = self._model._flat_predictions(y_pred)
        flat_true = self._model._flat_targets(y_true, len(flat_pred))
        with torch.no_grad():
            for spec, yt, yp in zip(specs, flat_true, flat_pred):
                yp = yp.detach()
                for metric, weighted in zip(spec.metrics, spec.weighted):
                    metric.update_state(yt, yp, sample_weight if weighted else None)

    def result(self) -> dict:
        specs = self._specs()
        multi = len(specs) > 1
        return {f"{spec.name}_{m.name}" if multi else m.name: m.result()
                for spec in specs for m in spec.metrics}

    def reset_state(self) -> None:
        for metric in self.metrics:
            metric.reset_state()


def output_metrics(metric_ids, weighted_ids, y_true, y_pred):
    """One output's metric objects and, beside them, whether each is weighted. A weighted metric
    whose name an unweighted one has already is renamed "weighted_<name>" (Keras' names)."""
    found = [metrics_mod.get(m, y_true, y_pred) for m in metric_ids]
    taken = {m.name for m in found}
    weighted = []
    for identifier in weighted_ids:
        metric = metrics_mod.get(identifier, y_true, y_pred)
        if metric.name in taken:
            metric.name = f"weighted_{metric.name}"
        weighted.append(metric)
    return found + weighted, [False] * len(found) + [True] * len(weighted)
