"""Math ops (Keras' `keras.ops.math`): log-sum-exp, top-k, erf, segment sums."""

from __future__ import annotations

import torch

from lamina.ops._dispatch import op
from lamina.ops.core import convert_to_tensor
from lamina.ops.numpy import _float

_t = convert_to_tensor


@op
def logsumexp(x, axis=None, keepdims=False):
    x = _float(x)
    if axis is None:
        out = torch.logsumexp(x.flatten(), dim=0)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return torch.logsumexp(x, dim=axis, keepdim=keepdims)


@op
def top_k(x, k, sorted=True):
    """(values, indices) of the k largest entries along the last axis (indices int64, as in
    Keras' torch backend)."""
    return tuple(torch.topk(_t(x), k, dim=-1, largest=True, sorted=sorted))


@op
def in_top_k(targets, predictions, k):
    predictions = _t(predictions)
    targets = _t(targets).to(torch.int64)
    target_scores = predictions.gather(-1, targets[:, None])
    return (predictions > target_scores).sum(dim=-1) < k


@op
def rsqrt(x):
    return torch.rsqrt(_float(x))


@op
def erf(x):
    return torch.erf(_float(x))


@op
def erfc(x):
    return torch.erfc(_float(x))


@op
def erfinv(x):
    return torch.erfinv(_float(x))


def _segments(data, segment_ids, num_segments, reduce):
    data, segment_ids = _t(data), _t(segment_ids).to(torch.int64)
    num_segments = int(segment_ids.max()) + 1 if num_segments is None else num_segments
    out = torch.zeros((num_segments, *data.shape[1:]), dtype=data.dtype, device=data.device)
    index = segment_ids.reshape(-1, *([1] * (data.ndim - 1))).expand_as(data)
    return out.scatter_reduce(0, index, data, reduce=reduce, include_self=False)


@op
def segment_sum(data, segment_ids, num_segments=None, sorted=False):
    return _segments(data, segment_ids, num_segments, "sum")


@op
def segment_max(data, segment_ids, num_segments=None, sorted=False):
    return _segments(data, segment_ids, num_segments, "amax")
