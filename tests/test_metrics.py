"""Metric resolution from shapes, as Keras; every metric class against keras.metrics is in
test_metrics_keras.py."""

import pytest
import torch

from lamina import metrics


@pytest.mark.parametrize(
    "y_true_shape,units,expected",
    [((8,), 3, "SparseCategoricalAccuracy"), ((8, 1), 3, "SparseCategoricalAccuracy"),
     ((8, 3), 3, "CategoricalAccuracy"), ((8, 1), 1, "BinaryAccuracy")],
)
def test_accuracy_is_resolved_from_shapes_as_keras(y_true_shape, units, expected):
    m = metrics.get("accuracy", torch.zeros(y_true_shape), torch.zeros(8, units))
    assert type(m).__name__ == expected and m.name == "accuracy"
