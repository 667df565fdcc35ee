"""PyDataset: Keras 3's base class for data written in Python, batch by batch."""

from __future__ import annotations


class PyDataset:
    """Subclass it with `__len__` (the number of batches) and `__getitem__(index)` returning one
    batch: `x`, `(x, y)` or `(x, y, sample_weight)`; fit, evaluate and predict take it as `x`.
    `on_epoch_begin` / `on_epoch_end` run around every pass over it (shuffle there).

    Args:
        workers, use_multiprocessing, max_queue_size: Keras' parallel-loading options. They are
            accepted and kept so Keras code runs unchanged; lamina reads the batches in order in
            the training process (wrap a torch Dataset in a DataLoader for parallel loading).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers, self.use_multiprocessing = workers, use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) returning a batch.")

    @property
    def num_batches(self):
        """The number of batches: `len(self)`, or None for an endless dataset."""
        try:
            return len(self)
        except TypeError:
            return None

    def __iter__(self):
        index = 0
        while self.num_batches is None or index < self.num_batches:
            yield self[index]
            index += 1

    def on_epoch_begin(self):
        """Called before each pass over the data."""

    def on_epoch_end(self):
        """Called after each pass over the data."""


# Keras 2's name, still exported by Keras 3.
Sequence = PyDataset
