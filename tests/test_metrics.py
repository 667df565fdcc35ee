"""Metrics against keras.metrics on the same random batches, accumulated over several updates."""

import numpy as np
import pytest
import torch

from lamina import metrics
from tests.parity import keras


def _batches(rng, kind, n_batches=3, n=20, k=4):
    for _ in range(n_batches):
        if kind == "binary":
            yield rng.integers(0, 2, (n, 1)).astype("float32"), rng.uniform(size=(n, 1)).astype("float32")
        elif kind == "sparse":
            p = rng.dirichlet(np.ones(k), n).astype("float32")
            yield rng.integers(0, k, (n,)), p
        elif kind == "onehot":
            p = rng.dirichlet(np.ones(k), n).astype("float32")
            yield np.eye(k, dtype="float32")[rng.integers(0, k, n)], p
        else:
            yield rng.standard_normal((n, 3)).astype("float32"), rng.standard_normal((n, 3)).astype("float32")


CASES = [
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "onehot"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("MeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("Precision", {}, "binary"),
    ("Recall", {}, "binary"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
]


@pytest.mark.parametrize("name,kwargs,kind", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_metric_matches_keras(rng, name, kwargs, kind, weighted):
    km, lm = getattr(keras.metrics, name)(**kwargs), getattr(metrics, name)(**kwargs)
    for y_true, y_pred in _batches(rng, kind):
        sw = rng.uniform(0, 2, len(y_true)).astype("float32") if weighted else None
        km.update_state(y_true, y_pred, sample_weight=sw)
        lm.update_state(torch.tensor(y_true), torch.tensor(y_pred), sample_weight=sw)
    expected = float(keras.ops.convert_to_numpy(km.result()))
    tol = 1e-5
    assert float(lm.result()) == pytest.approx(expected, abs=tol)
    lm.reset_state()
    km.reset_state()
    y_true, y_pred = next(_batches(rng, kind, 1))
    km.update_state(y_true, y_pred)
    lm.update_state(torch.tensor(y_true), torch.tensor(y_pred))
    assert float(lm.result()) == pytest.approx(float(keras.ops.convert_to_numpy(km.result())), abs=tol)


@pytest.mark.parametrize(
    "y_true_shape,units,expected",
    [((8,), 3, "SparseCategoricalAccuracy"), ((8, 1), 3, "SparseCategoricalAccuracy"),
     ((8, 3), 3, "CategoricalAccuracy"), ((8, 1), 1, "BinaryAccuracy")],
)
def test_accuracy_is_resolved_from_shapes_as_keras(y_true_shape, units, expected):
    m = metrics.get("accuracy", torch.zeros(y_true_shape), torch.zeros(8, units))
    assert type(m).__name__ == expected and m.name == "accuracy"
