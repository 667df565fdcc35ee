"""Core ops: tensors in and out of lamina (convert, cast, shape), and control flow."""

from __future__ import annotations

import builtins

import numpy as np
import torch

from lamina.config import get_device
from lamina.layers.base import _torch_dtype
from lamina.layers.symbolic import SymbolicTensor
from lamina.ops._dispatch import op


def standardize_dtype(dtype) -> torch.dtype | None:
    """A torch dtype from anything Keras accepts as one: "float32", np.float32, torch.float32."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except TypeError as e:
            raise ValueError(f"Unknown dtype: {dtype!r}. Use e.g. 'float32' or 'int32'.") from e
    return _torch_dtype(dtype)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """A torch tensor of `x`. As in Keras, Python floats become float32 and Python ints int32;
    numpy arrays keep their dtype; a tensor is returned as it is (cast if `dtype` says so)."""
    dtype = standardize_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if dtype is None or x.dtype == dtype else x.to(dtype)
    if isinstance(x, SymbolicTensor):
        raise TypeError(
            "convert_to_tensor got a symbolic tensor (from layers.Input): it has no value until the "
            "model is called on data."
        )
    if isinstance(x, (np.ndarray, np.generic)):
        array = np.asarray(x)
    else:
        array = np.asarray(x)
        if array.dtype == np.float64:  # a Python float or list of floats
            array = array.astype(np.float32)
        elif array.dtype == np.int64:
            array = array.astype(np.int32)
    if array.dtype.kind in "US":
        raise TypeError(f"convert_to_tensor: strings cannot become tensors. Received: {x!r}")
    # (np.ascontiguousarray would turn a 0-d array into 1-d)
    tensor = torch.from_numpy(array if array.flags.c_contiguous else array.copy()).to(get_device())
    return tensor if dtype is None else tensor.to(dtype)


def convert_to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, SymbolicTensor):
        raise TypeError(
            "convert_to_numpy got a symbolic tensor (from layers.Input): it has no value until the "
            "model is called on data."
        )
    return np.asarray(x)


def is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor)


def dtype(x) -> str:
    """The dtype's name, as Keras reports it: "float32"."""
    return str(convert_to_tensor(x).dtype).removeprefix("torch.")


def shape(x) -> tuple:
    """The shape as a tuple; None for the unknown axes of a symbolic tensor."""
    if isinstance(x, SymbolicTensor):
        return x.shape
    return tuple(convert_to_tensor(x).shape)


@op
def cast(x, dtype):
    return convert_to_tensor(x).to(standardize_dtype(dtype))


@op
def stop_gradient(variable):
    return convert_to_tensor(variable).detach()


@op
def slice(inputs, start_indices, shape):
    inputs = convert_to_tensor(inputs)
    index = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return inputs[index]


@op
def slice_update(inputs, start_indices, updates):
    inputs, updates = convert_to_tensor(inputs), convert_to_tensor(updates)
    index = tuple(builtins.slice(int(s), int(s) + n) for s, n in zip(start_indices, updates.shape))
    out = inputs.clone()
    out[index] = updates.to(out.dtype)
    return out


@op
def scatter(indices, values, shape):
    indices, values = convert_to_tensor(indices).long(), convert_to_tensor(values)
    out = torch.zeros(tuple(shape), dtype=values.dtype, device=values.device)
    out.index_put_(tuple(indices.unbind(-1)), values, accumulate=True)
    return out


@op
def scatter_update(inputs, indices, updates):
    inputs, indices = convert_to_tensor(inputs), convert_to_tensor(indices).long()
    out = inputs.clone()
    out[tuple(indices.unbind(-1))] = convert_to_tensor(updates).to(out.dtype)
    return out


@op
def unstack(x, num=None, axis=0):
    return list(torch.unbind(convert_to_tensor(x), dim=axis))


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(pred) else false_fn()


def fori_loop(lower, upper, body_fun, init_val):
    value = init_val
    for i in range(lower, upper):
        value = body_fun(i, value)
    return value


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    single = not isinstance(loop_vars, (list, tuple))
    state = (loop_vars,) if single else tuple(loop_vars)
    steps = 0
    while cond(*state) and (maximum_iterations is None or steps < maximum_iterations):
        out = body(*state)
        state = (out,) if single else tuple(out)
        steps += 1
    return state[0] if single else state
