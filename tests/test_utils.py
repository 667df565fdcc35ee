import numpy as np
import pytest
import torch

import lamina
from lamina.utils import timeseries_dataset_from_array, to_categorical
from tests.parity import keras


@pytest.mark.parametrize("y,n", [([0, 2, 1], None), ([[1], [0]], 3), (np.array([[0, 1], [2, 0]]), None)])
def test_to_categorical_matches_keras(y, n):
    np.testing.assert_array_equal(to_categorical(y, n), keras.utils.to_categorical(y, n))


def test_to_categorical_errors():
    with pytest.raises(ValueError, match="does not fit num_classes=2"):
        to_categorical([0, 3], 2)
    with pytest.raises(ValueError, match="non-negative"):
        to_categorical([-1, 0])


def test_timeseries_windows_by_hand():
    data = np.arange(20, dtype="float32")[:, None]
    targets = np.arange(100, 120)
    loader = timeseries_dataset_from_array(data, targets, sequence_length=4, sequence_stride=3,
                                           sampling_rate=2, batch_size=2)
    windows, ys = zip(*[(w, t) for wb, tb in loader for w, t in zip(wb, tb)])
    starts = list(range(0, 20 - 6, 3))
    assert [int(t) for t in ys] == [100 + s for s in starts]
    for s, w in zip(starts, windows):
        np.testing.assert_array_equal(w[:, 0].numpy(), [s, s + 2, s + 4, s + 6])


def test_timeseries_windows_train_a_model():
    series = np.sin(np.linspace(0, 20, 300)).astype("float32")[:, None]
    loader = timeseries_dataset_from_array(series[:-5], series[5:], sequence_length=5, batch_size=32)
    model = lamina.Sequential([lamina.layers.Input((5, 1)), lamina.layers.Flatten(),
                               lamina.layers.Dense(1)])
    model.compile(optimizer=lamina.optimizers.Adam(0.01), loss="mse")
    h = model.fit(loader, epochs=30, verbose=0)
    assert h.history["loss"][-1] < 0.2 * h.history["loss"][0]


def test_set_random_seed_makes_fit_reproducible():
    def run():
        lamina.utils.set_random_seed(7)
        model = lamina.Sequential([lamina.layers.Input((3,)), lamina.layers.Dense(4), lamina.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(0).standard_normal((40, 3)).astype("float32")
        model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)
    assert torch.initial_seed() == 7
