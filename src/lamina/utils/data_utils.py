"""to_categorical and timeseries_dataset_from_array, as in keras.utils."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def to_categorical(x, num_classes=None) -> np.ndarray:
    """Integer class labels (any shape) to one-hot float32 rows, as keras.utils.to_categorical."""
    x = np.asarray(x)
    if x.size and (not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0)):
        raise ValueError("to_categorical: labels must be integers 0..num_classes-1.")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical: labels must be non-negative; found {int(x.min())}.")
    n = int(x.max()) + 1 if num_classes is None else int(num_classes)
    if x.size and x.max() >= n:
        raise ValueError(
            f"to_categorical: label {int(x.max())} does not fit num_classes={n}; labels must be "
            f"in 0..{n - 1}."
        )
    out = np.zeros((*x.shape, n), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


class _Windows(Dataset):
    def __init__(self, data, targets, starts, length, rate):
        self.data, self.targets, self.starts = data, targets, starts
        self.offsets = torch.arange(0, length * rate, rate)

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        window = self.data[self.starts[i] + self.offsets]
        if self.targets is None:
            return window
        return window, self.targets[self.starts[i]]


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None) -> DataLoader:
    """Sliding windows over a series, as keras.utils.timeseries_dataset_from_array.

    Window i holds data[s, s + r, …, s + r·(sequence_length - 1)] with s = start_index + i·stride;
    its target is targets[s] (pass targets already shifted, e.g. data[sequence_length:], to
    forecast the next value). Returns a DataLoader of (window, target) batches, usable in fit.
    """
    if sequence_length < 1 or sequence_stride < 1 or sampling_rate < 1:
        raise ValueError(
            "sequence_length, sequence_stride and sampling_rate must be positive ints. Received: "
            f"{sequence_length}, {sequence_stride}, {sampling_rate}"
        )
    data = torch.as_tensor(np.asarray(data))
    if data.dtype == torch.float64:
        data = data.float()
    start = start_index or 0
    end = len(data) if end_index is None else end_index
    if targets is not None:
        targets = torch.as_tensor(np.asarray(targets))
        if targets.dtype == torch.float64:
            targets = targets.float()
        end = min(end, len(targets))
    span = (sequence_length - 1) * sampling_rate
    last = min(end, len(data)) - span
    starts = torch.arange(start, max(last, start), sequence_stride)
    if shuffle:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        starts = starts[torch.randperm(len(starts), generator=g)]
    return DataLoader(_Windows(data, targets, starts, sequence_length, sampling_rate),
                      batch_size=batch_size, shuffle=False)
