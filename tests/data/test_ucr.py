import numpy as np
import pytest
from aeon.datasets import load_classification

from lamina.datasets import load_ucr


def test_gunpoint_shapes_labels_and_protocol():
    data = load_ucr("GunPoint")
    assert data.x_train.shape == (50, 150, 1) and data.x_test.shape == (150, 150, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert list(data.classes) == ["1", "2"] and set(data.y_test) == {0, 1}
    raw, labels = load_classification("GunPoint", split="train")
    series = raw[3, 0]
    np.testing.assert_allclose(data.x_train[3, :, 0], (series - series.mean()) / series.std(), rtol=1e-5)
    assert list(data.classes[data.y_train]) == list(labels)
    np.testing.assert_allclose(data.x_train.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(1), 1, atol=1e-4)


def test_multivariate_is_channels_last():
    data = load_ucr("BasicMotions")
    assert data.x_train.shape == (40, 100, 6) and data.num_classes == 4
    assert data.equal_length


def test_unequal_lengths_are_zero_padded_with_true_lengths():
    data = load_ucr("JapaneseVowels")
    raw, _ = load_classification("JapaneseVowels", split="train")
    assert data.x_train.shape[2] == 12 and not data.equal_length
    for i in (0, 1, 5):
        n = raw[i].shape[1]
        assert data.lengths_train[i] == n
        assert np.all(data.x_train[i, n:] == 0) and np.any(data.x_train[i, :n] != 0)


def test_missing_dataset_explains():
    with pytest.raises(ValueError, match="not available offline in aeon"):
        load_ucr("Coffee")
