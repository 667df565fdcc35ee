"""Linear-algebra ops (Keras' `keras.ops.linalg`)."""

from __future__ import annotations

import torch

from lamina.ops._dispatch import op
from lamina.ops.numpy import _float


@op
def norm(x, ord=None, axis=None, keepdims=False):
    """The vector norm over one axis (or of the flattened tensor), the matrix norm over two."""
    x = _float(x)
    if isinstance(axis, (tuple, list)) and len(axis) == 2:
        return torch.linalg.matrix_norm(x, ord="fro" if ord is None else ord, dim=tuple(axis),
                                        keepdim=keepdims)
    if axis is None and x.ndim == 2 and ord is not None:
        return torch.linalg.matrix_norm(x, ord=ord, keepdim=keepdims)
    if axis is None:
        out = torch.linalg.vector_norm(x.flatten(), ord=2 if ord is None else ord)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return torch.linalg.vector_norm(x, ord=2 if ord is None else ord, dim=axis, keepdim=keepdims)


@op
def inv(x):
    return torch.linalg.inv(_float(x))


@op
def det(x):
    return torch.linalg.det(_float(x))


@op
def solve(a, b):
    return torch.linalg.solve(_float(a), _float(b))


@op
def cholesky(x, upper=False):
    return torch.linalg.cholesky(_float(x), upper=upper)


@op
def pinv(x, rcond=1e-15):
    return torch.linalg.pinv(_float(x), rtol=rcond)


@op
def svd(x, full_matrices=True, compute_uv=True):
    if not compute_uv:
        return torch.linalg.svdvals(_float(x))
    return tuple(torch.linalg.svd(_float(x), full_matrices=full_matrices))


@op
def qr(x, mode="reduced"):
    return tuple(torch.linalg.qr(_float(x), mode=mode))
