"""Data adapters: whatever the user passes to fit/evaluate/predict, as batches of torch tensors.

Arrays (numpy, torch, pandas, lists, dicts of them) are converted once, checked once (lengths,
NaN, emptiness) and then sliced per batch. A torch Dataset or DataLoader is iterated as it is, and
a `lamina.utils.PyDataset` batch by batch, with its epoch hooks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lamina.utils import tree
from lamina.utils.py_dataset import PyDataset


def to_tensor(a, what: str) -> torch.Tensor:
    """One array-like as a tensor; float64 becomes float32 (Keras' floatx)."""
    if isinstance(a, torch.Tensor):
        t = a
    else:
        if hasattr(a, "to_numpy"):  # pandas DataFrame / Series
            # A Series is one column: (n, 1), as Keras reads it.
            a = a.to_numpy()[:, None] if getattr(a, "ndim", 2) == 1 else a.to_numpy()
        arr = np.asarray(a)
        if arr.dtype == object:
            raise ValueError(
                f"`{what}` could not be read as a numeric array (it has dtype object: ragged "
                "rows or mixed types). Pass a numeric numpy array of one shape."
            )
        if arr.dtype.kind in "US":
            raise ValueError(
                f"`{what}` holds strings ({arr.dtype}). Encode labels as integers first, e.g. with "
                "np.unique(y, return_inverse=True)[1]."
            )
        arr = np.ascontiguousarray(arr)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if t.is_complex():
        raise ValueError(
            f"`{what}` holds complex numbers ({t.dtype}); lamina's layers compute with real "
            "numbers. Pass the real part, the magnitude (np.abs), or both parts as channels."
        )
    if t.dtype == torch.float64:
        t = t.float()
    elif t.dtype == torch.bool:
        t = t.float()
    return t


def _is_structure(x) -> bool:
    """A list/tuple/dict of arrays (several inputs or outputs), not a nested list of numbers."""
    if isinstance(x, dict):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(hasattr(item, "shape") or isinstance(item, (list, dict)) and _is_structure(item)
                   for item in x)
    return False


def to_tensors(x, what: str):
    if x is None:
        return None
    if _is_structure(x):
        if isinstance(x, dict):
            return {k: to_tensor(v, f"{what}['{k}']") for k, v in x.items()}
        return [to_tensor(v, f"{what}[{i}]") for i, v in enumerate(x)]
    return to_tensor(x, what)


def num_samples(structure, what: str) -> int:
    leaves = tree.flatten(structure)
    lengths = {int(t.shape[0]) if t.ndim else None for t in leaves}
    if None in lengths:
        raise ValueError(f"`{what}` must have a batch axis; received a scalar.")
    if len(lengths) > 1:
        raise ValueError(
            f"All arrays in `{what}` must have the same number of samples; received lengths "
            f"{sorted(lengths)}."
        )
    return lengths.pop()


def check_finite(structure, what: str) -> None:
    for t in tree.flatten(structure):
        # A finite sum proves every element finite (one NaN or infinity makes the sum NaN or
        # infinite), at a tenth of isfinite's cost; the exact check runs only when it is not.
        if (t.is_floating_point() and not math.isfinite(t.sum())
                and not bool(torch.isfinite(t).all())):
            first = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(1).nonzero()[0])
            kind = "NaN" if bool(torch.isnan(t).any()) else "infinite values"
            raise ValueError(
                f"`{what}` contains {kind} (first in sample {first}). Clean or impute the data "
                "first: a NaN input gives NaN outputs, and in training makes every weight NaN."
            )


def checked_tensors(x, what: str):
    """`to_tensors(x)`, refusing NaN and infinities."""
    tensors = to_tensors(x, what)
    if tensors is not None:
        check_finite(tensors, what)
    return tensors


def checked_sample_weight(weight, what: str = "sample_weight"):
    """Per-sample weights as a tensor: finite and non-negative (a NaN weight makes the loss and
    then every weight NaN; a negative one trains towards the wrong answer)."""
    if weight is None:
        return None
    weight = to_tensor(weight, what)
    check_finite(weight, what)
    negative = weight < 0
    if bool(negative.any()):
        first = int(negative.reshape(weight.shape[0], -1).any(1).nonzero()[0]) if weight.ndim else 0
        raise ValueError(f"`{what}` has negative weights (first in sample {first}); a sample's "
                         "weight scales its loss and must be >= 0.")
    return weight


def checked_class_weight(class_weight: dict) -> dict:
    """`class_weight` with every weight a finite, non-negative number."""
    bad = {c: w for c, w in class_weight.items()
           if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating))
           or not math.isfinite(w) or w < 0}
    if bad:
        raise ValueError(f"`class_weight` must map each class to a finite, non-negative number; "
                         f"received {bad}.")
    return class_weight


DEFAULT_BATCH_SIZE = 32  # Keras' default for fit, evaluate and predict


def checked_batch_size(batch_size) -> int:
    """`batch_size`, or Keras' default for None; an error naming the argument otherwise."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(f"`batch_size` must be a positive int. Received: {batch_size!r}")
    return batch_size or DEFAULT_BATCH_SIZE


class ArrayData:
    """In-memory arrays: batches by slicing, shuffled per epoch when asked."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False):
        if x is None:
            raise ValueError("`x` is None: pass the input data.")
        self.x = checked_tensors(x, "x")
        self.y = checked_tensors(y, "y")
        self.sample_weight = checked_sample_weight(sample_weight)
        self.n = num_samples(self.x, "x")
        if self.n == 0:
            raise ValueError("`x` is empty (0 samples): there is nothing to train or predict on.")
        for name, part in (("y", self.y), ("sample_weight", self.sample_weight)):
            if part is not None and num_samples(part, name) != self.n:
                raise ValueError(
                    f"`x` and `{name}` must have the same number of samples; x has {self.n}, "
                    f"{name} has {num_samples(part, name)}."
                )
        self.batch_size = checked_batch_size(batch_size)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def split(self, fraction: float):
        """(train, validation): the last `fraction` of the samples held out, as Keras does."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"`validation_split` must be in (0, 1). Received: {fraction}")
        cut = int(self.n * (1.0 - fraction))
        if cut == 0 or cut == self.n:
            raise ValueError(
                f"validation_split={fraction} leaves an empty training or validation set for "
                f"{self.n} samples."
            )

        def part(sl):
            new = object.__new__(ArrayData)
            new.__dict__.update(self.__dict__)
            new.x = tree.map_structure(lambda t: t[sl], self.x)
            new.y = None if self.y is None else tree.map_structure(lambda t: t[sl], self.y)
            new.sample_weight = None if self.sample_weight is None else self.sample_weight[sl]
            new.n = len(range(*sl.indices(self.n)))
            return new

        return part(slice(0, cut)), part(slice(cut, None))

    def peek(self):
        return next(iter(self))

    def __iter__(self):
        order = torch.randperm(self.n) if self.shuffle else None
        for start in range(0, self.n, self.batch_size):
            rows = slice(start, start + self.batch_size)
            yield self.take(rows if order is None else order[rows])

    def take(self, rows):
        """The samples `rows` (a slice, or a 1-D tensor of indices) as one batch (x, y, weight)."""
        if isinstance(rows, slice):
            pick = (lambda t: t[rows])
        else:
            pick = (lambda t: t.index_select(0, rows))
        return (tree.map_structure(pick, self.x),
                None if self.y is None else tree.map_structure(pick, self.y),
                None if self.sample_weight is None else pick(self.sample_weight))


class LoaderData:
    """A torch DataLoader (or a Dataset, batched here) yielding x, (x, y) or (x, y, weight)."""

    def __init__(self, data, batch_size=None, shuffle=False):
        if isinstance(data, Dataset) and not isinstance(data, DataLoader):
            data = DataLoader(data, batch_size=batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle)
        self.loader = data

    def __len__(self):
        try:
            return len(self.loader)
        except TypeError:
            return 0

    def peek(self):
        return next(iter(self))

    def __iter__(self):
        for item in self.loader:
            if isinstance(item, (list, tuple)) and len(item) in (1, 2, 3):
                x, y, w = (*item, None, None)[:3]  # (x,), (x, y) or (x, y, weight), as Keras
            else:
                x, y, w = item, None, None
            yield to_tensors(x, "x"), to_tensors(y, "y"), checked_sample_weight(w)


def match_input_rank(x: torch.Tensor, expected_shape) -> torch.Tensor:
    """Keras 3's rule for data one axis off the model's Input (Functional._adjust_input_rank):
    a missing trailing axis is added where the Input's last size is 1 ((n, 5) into Input((5, 1))),
    and an extra trailing size-1 axis is dropped ((n, 5, 1) into Input((5,))). Anything else is
    returned as it is, for the caller's shape check to report."""
    rank, expected_rank = x.ndim, len(expected_shape)
    if rank == expected_rank + 1 and x.shape[-1] == 1:
        return x.squeeze(-1)
    if rank == expected_rank - 1 and expected_shape[-1] == 1:
        return x.unsqueeze(-1)
    return x


def match_input_dtype(x: torch.Tensor, dtype: torch.dtype, what: str) -> torch.Tensor:
    """Data for a floating-point Input in its dtype: Keras casts integers and booleans too.
    Complex data are refused: no real value stands for them."""
    if x.dtype == dtype or not dtype.is_floating_point:
        return x
    if x.is_complex():
        raise ValueError(f"{what} takes real numbers ({dtype}), but received complex data "
                         f"({x.dtype}). Pass the real part, the magnitude, or both parts as channels.")
    return x.to(dtype)


class PyDatasetData(LoaderData):
    """A lamina.utils.PyDataset: batches by index (in a new random order each pass when
    shuffling, as Keras), `on_epoch_begin`/`on_epoch_end` around each complete pass."""

    def __init__(self, dataset: PyDataset, shuffle=False):
        self.dataset, self.shuffle = dataset, shuffle

    def __len__(self):
        return self.dataset.num_batches or 0

    @property
    def loader(self):
        """The batches of one pass, for LoaderData's unpacking."""
        n = self.dataset.num_batches
        if n is None:
            return iter(self.dataset)
        order = torch.randperm(n).tolist() if self.shuffle else range(n)
        return (self.dataset[i] for i in order)

    def peek(self):
        return next(super().__iter__())

    def __iter__(self):
        self.dataset.on_epoch_begin()
        yield from super().__iter__()
        self.dataset.on_epoch_end()


def adapt(x, y=None, sample_weight=None, batch_size=None, shuffle=False):
    """The adapter for what the user passed."""
    if isinstance(x, PyDataset):
        if y is not None or sample_weight is not None:
            raise ValueError("`y` and `sample_weight` must be None when `x` is a PyDataset: its "
                             "__getitem__ returns (x, y) or (x, y, sample_weight) batches itself.")
        return PyDatasetData(x, shuffle)
    if isinstance(x, (Dataset, DataLoader)):
        if y is not None:
            raise ValueError(
                "`y` must be None when `x` is a torch Dataset or DataLoader: it yields (x, y) "
                "pairs itself."
            )
        return LoaderData(x, batch_size, shuffle)
    return ArrayData(x, y, sample_weight, batch_size, shuffle)
