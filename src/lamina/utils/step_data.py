"""The batch a step method receives, packed and unpacked as Keras 3 does (`train_step(data)`)."""

from __future__ import annotations


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """One batch as `train_step`/`test_step`/`predict_step` receive it: `x` alone when there are
    no targets (wrapped as `(x,)` when `x` is itself a list or tuple of inputs, so that unpacking
    does not take its second input for targets), else `(x, y)`, else `(x, y, sample_weight)`."""
    if y is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """`(x, y, sample_weight)` from a batch as a step receives it, None for what is missing.

    A list counts as a tuple; anything else is `x` alone.
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(
        "A batch must be x, (x,), (x, y) or (x, y, sample_weight); received a tuple of "
        f"{len(data)} items."
    )
