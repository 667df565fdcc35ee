"""The UCR/UEA time-series classification archives that aeon ships, ready for a Keras-style model.

Series come channels_last as float32 (n, length, channels), each series z-normalised per channel
as in the UCR protocol, labels as integers 0..k-1 with their names kept. Datasets whose series
differ in length (JapaneseVowels, PickupGestureWiimoteZ, …) are zero-padded at the end to the
longest series of train and test together; `lengths` holds each series' true length, and a
`layers.Masking(0.0)` in front of the model ignores the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INSTALL = "pip install 'lamina[datasets]'  (or: pip install aeon)"


@dataclass
class UCRDataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    lengths_train: np.ndarray
    lengths_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def equal_length(self) -> bool:
        return bool((self.lengths_train == self.x_train.shape[1]).all()
                    and (self.lengths_test == self.x_test.shape[1]).all())

    def __repr__(self) -> str:
        return (f"UCRDataset({self.name!r}: train {self.x_train.shape}, test {self.x_test.shape}, "
                f"{self.num_classes} classes)")


def _load_split(name, split):
    try:
        from aeon.datasets import load_classification
    except ImportError as e:
        raise ImportError(f"load_ucr needs aeon, which ships the UCR/UEA archives: {_INSTALL}") from e
    try:
        return load_classification(name, split=split)
    except (ValueError, OSError) as e:
        raise ValueError(
            f"Dataset '{name}' is not available offline in aeon ({e.__class__.__name__}). The "
            "datasets aeon ships include GunPoint, ItalyPowerDemand, ArrowHead, OSULeaf, ACSF1, "
            "BasicMotions, JapaneseVowels and PickupGestureWiimoteZ; others are downloaded by aeon "
            "from timeseriesclassification.com when the machine is online."
        ) from e


def _channels_last(series) -> list[np.ndarray]:
    """aeon's (channels, length) series, one array each, as (length, channels) float64."""
    return [np.asarray(s, dtype=np.float64).T for s in series]


def znormalise(series: np.ndarray) -> np.ndarray:
    """Each channel of one (length, channels) series to mean 0, std 1 (constant channels to 0)."""
    mean = series.mean(axis=0, keepdims=True)
    std = series.std(axis=0, keepdims=True)
    return (series - mean) / np.where(std > 0, std, 1.0)


def _pad(series: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(series), length, series[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def load_ucr(name: str, normalise: bool = True) -> UCRDataset:
    """Train and test split of a UCR/UEA dataset that aeon ships.

    Args:
        name: the archive's name, e.g. "GunPoint" or "BasicMotions".
        normalise: z-normalise each series per channel (the UCR protocol); True by default.

    Returns a UCRDataset with x_* (n, length, channels) float32, y_* int64 in 0..k-1 (the order
    of `classes`, sorted label names), and lengths_* (the true length of each series).

    Example:
        >>> data = load_ucr("GunPoint")
        >>> data.x_train.shape, data.num_classes
        ((50, 150, 1), 2)
    """
    (xtr, ytr), (xte, yte) = _load_split(name, "train"), _load_split(name, "test")
    train, test = _channels_last(xtr), _channels_last(xte)
    if normalise:
        train, test = [znormalise(s) for s in train], [znormalise(s) for s in test]
    for part, split in ((train, "train"), (test, "test")):
        if any(np.isnan(s).any() for s in part):
            raise ValueError(f"Dataset '{name}' ({split}) has missing values; lamina does not impute them.")
    length = max(len(s) for s in train + test)
    classes = np.unique(np.concatenate([np.asarray(ytr), np.asarray(yte)]))
    return UCRDataset(
        name=name,
        x_train=_pad(train, length), y_train=np.searchsorted(classes, ytr).astype(np.int64),
        x_test=_pad(test, length), y_test=np.searchsorted(classes, yte).astype(np.int64),
        classes=classes,
        lengths_train=np.array([len(s) for s in train]), lengths_test=np.array([len(s) for s in test]),
    )
