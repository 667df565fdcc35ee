"""pad_sequences and normalize, as in keras.utils."""

from __future__ import annotations

import numpy as np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Sequences of different lengths as one array (num_sequences, maxlen, *item_shape).

    Args:
        sequences: a list of sequences (lists or arrays; the items may be arrays themselves).
        maxlen: the length to pad or cut to; None uses the longest sequence.
        dtype: the output's dtype (strings need dtype=str or object).
        padding: "pre" or "post": pad before or after each sequence.
        truncating: "pre" or "post": drop values from the start or the end of longer sequences.
        value: the padding value.
    """
    for name, arg in (("padding", padding), ("truncating", truncating)):
        if arg not in ("pre", "post"):
            raise ValueError(f'pad_sequences: `{name}` must be "pre" or "post". Received: {name}={arg!r}')
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: `sequences` must be a list of sequences (iterables). "
                         f"Received: {type(sequences).__name__}")
    lengths, item_shape = [], ()
    for i, seq in enumerate(sequences):
        if not hasattr(seq, "__len__"):
            raise ValueError(f"pad_sequences: `sequences[{i}]` is not a sequence: {seq!r}")
        lengths.append(len(seq))
        if len(seq) and not item_shape:
            item_shape = np.asarray(seq).shape[1:]  # from the first non-empty sequence, as Keras
    maxlen = max(lengths, default=0) if maxlen is None else int(maxlen)
    is_text = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.object_)
    if isinstance(value, str) and not is_text:
        raise ValueError(f"pad_sequences: `dtype` {dtype} cannot hold the padding value {value!r}; "
                         "pass dtype=object (or a string dtype) to pad text.")
    out = np.full((len(sequences), maxlen, *item_shape), value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or not maxlen:
            continue
        kept = np.asarray(seq, dtype=dtype)
        kept = kept[-maxlen:] if truncating == "pre" else kept[:maxlen]
        if kept.shape[1:] != item_shape:
            raise ValueError(f"pad_sequences: the items of `sequences[{i}]` have shape {kept.shape[1:]}, "
                             f"those of the first sequence {item_shape}; they must be the same.")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out


def normalize(x, axis=-1, order=2):
    """`x` divided by its `order`-norm along `axis` (zero vectors stay zero), as keras.utils.normalize."""
    if hasattr(x, "detach"):  # a torch tensor: keep it one
        import torch

        return torch.nn.functional.normalize(x, p=order, dim=axis, eps=0.0).nan_to_num(0.0)
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)
