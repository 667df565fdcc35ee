"""What the normalization layers share besides their operators (`lamina.kernels.normalization`).

A norm is a choice of which input axes its statistics keep (BatchNorm: channels; InstanceNorm:
batch and channels; LayerNorm: all but the normalized axes; GroupNorm: batch and channel groups),
which axes its scale and offset span, and how the statistics are mixed and tracked. `plan()`
views the input so that adjacent axes with the same role are merged: a channels_last BatchNorm
input of any rank becomes a contiguous (rows, channels) matrix, an InstanceNorm input (batch,
positions, channels); the operators then reduce over contiguous memory. Masked statistics and
Keras' moving averages are here too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import distributed as dist

from lamina.kernels._ops import as_float32

# Keras' backend epsilon: keeps a masked mean finite when a mask selects nothing.
_MASK_EPSILON = 1e-7


@dataclass(frozen=True)
class Plan:
    """How a norm sees an input: a compact view, the reduced dims, and the shapes of its scale
    (or offset) and of its statistics in that view."""

    view: tuple
    reduce: tuple
    param_shape: tuple
    stat_shape: tuple

    @property
    def count(self) -> int:
        """How many values each statistic summarizes."""
        return math.prod(self.view[d] for d in self.reduce)


def plan(shape, stat_axes, param_axes) -> Plan:
    """See `_plan`: cached, since a layer sees the same few shapes call after call (symbolic sizes
    of a graph capture are not hashable, and are planned afresh)."""
    if not all(type(size) is int for size in shape):
        return _plan.__wrapped__(shape, stat_axes, param_axes)
    return _plan(tuple(shape), frozenset(stat_axes), frozenset(param_axes))


def table_shape(shape, axes) -> tuple:
    """The shape of a table that varies along `axes` (non-negative indices) of an input of
    `shape`, to broadcast against the input as it is: its sizes along `axes`, 1 along the axes
    between, and none before the first (a channels_last table is its (channels,) vector)."""
    return tuple(shape[d] if d in axes else 1 for d in range(min(axes), len(shape)))


def shaped(t, shape):
    """`t` reshaped to `shape` (None stays None; a tensor of that shape already is `t` itself)."""
    return t if t is None or t.shape == shape else t.reshape(shape)


@functools.lru_cache(maxsize=256)
def _plan(shape, stat_axes, param_axes) -> Plan:
    """The compact view of an input of `shape` for statistics that keep `stat_axes` and
    parameters that span `param_axes` (both sets of non-negative axis indices).

    Size-1 axes are dropped and neighbours with the same two roles are merged, so a reshape of a
    contiguous input is free and every reduction runs over as few, as long, axes as possible.
    """
    groups: list[list] = []
    for axis, size in enumerate(shape):
        if size == 1:
            continue
        role = (axis in stat_axes, axis in param_axes)
        if groups and groups[-1][1] == role:
            groups[-1][0] *= size
        else:
            groups.append([size, role])
    if not any(not keeps for _, (keeps, _) in groups):
        # Nothing left to reduce (one value per statistic, e.g. a batch of one for BatchNorm):
        # a size-1 reduced axis keeps the statistics well defined (mean = x, variance = 0).
        groups.append([1, (False, False)])
    view = tuple(size for size, _ in groups)
    return Plan(
        view=view,
        reduce=tuple(i for i, (_, (keeps, _)) in enumerate(groups) if not keeps),
        param_shape=tuple(size if spans else 1 for size, (_, spans) in groups),
        stat_shape=tuple(size if keeps else 1 for size, (keeps, _) in groups),
    )


def masked_moments(x, dims, mask):
    """Mean and biased variance over `dims` counting only where `mask` (broadcastable) is true,
    as Keras computes them for masked BatchNormalization."""
    x = as_float32(x)
    weight = mask.to(x.dtype).expand_as(x)
    count = weight.sum(dims, keepdim=True) + _MASK_EPSILON
    mean = (x * weight).sum(dims, keepdim=True) / count
    var = (((x - mean) * weight) ** 2).sum(dims, keepdim=True) / count
    return mean, var


def update_moving(movings, batch_values, momentum: float) -> None:
    """Keras' moving averages: moving = momentum * moving + (1 - momentum) * batch_value, for each
    pair (one launch per operation for all of them, which an accelerator notices)."""
    with torch.no_grad():
        values = [b.reshape(m.shape).to(m.dtype) for m, b in zip(movings, batch_values)]
        torch._foreach_lerp_(movings, values, 1.0 - momentum)  # moving + (1 - momentum) * (value - moving)


def process_group(synchronized: bool):
    """The default process group when statistics are to be synchronized across processes."""
    if synchronized and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None
