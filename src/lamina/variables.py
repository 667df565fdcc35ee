"""Weights that speak Keras' Variable API while torch sees what it always sees.

A Keras script touches weights as `w.value`, `w.assign(v)`, `w.assign_add(d)`, `w.numpy()`,
`w.trainable`, `w.name`, `w.path`. lamina's trainable weights are `Variable`s, a subclass of
`nn.Parameter` (so state_dict, optimizers, autograd and torch.compile treat them as parameters);
the non-trainable ones (moving statistics) are `BufferVariable`s, registered as buffers. Both only
add methods: every torch op on them returns a plain tensor, as on a Parameter.

Differences from Keras: `.dtype` is the torch dtype (torch.float32), and `.shape` is torch's
storage order, which for a few layers' weights (conv kernels, recurrent kernels) is a permutation
of Keras' shape; `.value`, `.numpy()` and `assign` use Keras' shape, as `get_weights` does
(`np.asarray(w)` and torch's `w.numpy(force=True)` keep torch's order, which torch relies on).
"""

from __future__ import annotations

import torch
from torch import nn
from torch._C import _disabled_torch_function_impl

__all__ = ["Variable", "BufferVariable"]


class _KerasVariableAPI:
    """Keras' Variable methods, for both weight classes. The metadata lives in the tensor's
    `__dict__`, which deepcopy and pickling carry (see `__deepcopy__`, `__reduce_ex__`)."""

    def _describe(self, name, path=None, layout=None):
        self._keras_name = name
        self._keras_path = path or name
        self._keras_layout = layout
        return self

    @property
    def name(self) -> str:
        return self.__dict__.get("_keras_name") or "variable"

    @property
    def path(self) -> str:
        return self.__dict__.get("_keras_path") or self.name

    @property
    def value(self) -> torch.Tensor:
        """The weight as a tensor in Keras' shape (autograd flows through it). For a weight kept
        permuted, the view carries the weight's gradient in Keras' shape too, so the torch guide's
        `v.value.grad` after `loss.backward()` reads it (see `storage_gradient`)."""
        layout = self.__dict__.get("_keras_layout")
        if layout is None:
            return self
        view = layout.to_keras(self)
        if self.grad is not None:
            view.grad = layout.to_keras(self.grad)
        return view

    def storage_gradient(self, grad):
        """`grad` in the weight's own (torch) order: a gradient read as `.value.grad`, or any
        gradient of Keras' shape, is permuted back; the weight's own `.grad` is taken as it is."""
        layout = self.__dict__.get("_keras_layout")
        if layout is None or grad is None or grad is self.grad:
            return grad
        if grad._base is not None and grad._base is self.grad:  # a `.value.grad` view
            return self.grad
        if tuple(grad.shape) == tuple(self.shape) and tuple(self.value.shape) != tuple(self.shape):
            return grad
        return layout.from_keras(grad)

    @property
    def trainable(self) -> bool:
        return self.requires_grad

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value and not isinstance(self, nn.Parameter):
            raise ValueError(
                f"Weight '{self.path}' is a non-trainable buffer (e.g. a moving statistic); create "
                "it with trainable=True to train it."
            )
        self.requires_grad_(bool(value))

    def numpy(self, *args, **kwargs):
        """The value as a numpy array in Keras' shape. Called with torch's arguments
        (`numpy(force=True)`, as torch's exporters do) it is torch's numpy(): storage order."""
        if args or kwargs:
            return torch.Tensor.numpy(self, *args, **kwargs)
        return self.value.detach().cpu().numpy()

    def __array__(self, *args, **kwargs):
        # numpy's view of the tensor stays torch's (storage order, as torch code expects).
        return torch.Tensor.__array__(self.detach(), *args, **kwargs)

    def assign(self, value):
        """Set the weight to `value` (Keras' shape), in place: optimizers and the model keep
        seeing the same tensor."""
        value = self._in_torch_order(value)
        with torch.no_grad():
            torch.Tensor.copy_(self, value)
        return self

    def assign_add(self, delta):
        delta = self._in_torch_order(delta)
        with torch.no_grad():
            torch.Tensor.add_(self, delta)
        return self

    def assign_sub(self, delta):
        delta = self._in_torch_order(delta)
        with torch.no_grad():
            torch.Tensor.sub_(self, delta)
        return self

    def _in_torch_order(self, value):
        from lamina.ops.core import convert_to_tensor

        value = convert_to_tensor(value).to(device=self.device, dtype=self.dtype)
        expected = tuple(self.value.shape)
        if tuple(value.shape) != expected and value.ndim != 0:
            raise ValueError(
                f"Variable '{self.path}' has shape {expected}; the value assigned to it has shape "
                f"{tuple(value.shape)}. Assign a value of the variable's shape."
            )
        layout = self.__dict__.get("_keras_layout")
        return value if layout is None or value.ndim == 0 else layout.from_keras(value)

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            data = torch.Tensor.clone(self.detach(), memory_format=torch.preserve_format)
            memo[id(self)] = _rebuild(type(self), data, self.requires_grad, dict(self.__dict__))
        return memo[id(self)]

    def __reduce_ex__(self, protocol):
        # torch's own reduction of a Parameter rebuilds a plain nn.Parameter and drops the class.
        return _rebuild, (type(self), self.detach(), self.requires_grad, dict(self.__dict__))

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} path={self.path}, shape={tuple(self.value.shape)}, "
                f"dtype={str(self.dtype).removeprefix('torch.')}, value={self.value.detach()!r}>")


def _rebuild(cls, data, requires_grad, state):
    weight = torch.Tensor._make_subclass(cls, data, requires_grad)
    weight.__dict__.update(state)
    return weight


class Variable(_KerasVariableAPI, nn.Parameter):
    """A trainable (or frozen) weight: an nn.Parameter with Keras' Variable API.

    Args:
        initializer: the initial value (an array or tensor), or an initializer (a name such as
            "zeros", an Initializer, or a callable `(shape, dtype)`) used with `shape`.
        shape: the shape, when `initializer` is not a value.
        dtype: the dtype (float32 for initializers; a value's own dtype otherwise).
        trainable: whether gradients are computed for it (`requires_grad`).
        name: its name.

    Example:
        >>> v = lamina.Variable("zeros", shape=(2,), name="total")
        >>> v.assign_add([1.0, 2.0]); v.numpy()
        array([1., 2.], dtype=float32)
    """

    def __new__(cls, initializer=None, shape=None, dtype=None, trainable=True, autocast=True,
                aggregation="none", synchronization="auto", name=None, **kwargs):
        if kwargs:
            raise TypeError(f"Variable: unrecognized keyword arguments: {sorted(kwargs)}")
        value = _initial_value(initializer, shape, dtype)
        return _rebuild(cls, value, bool(trainable), {})._describe(name or "variable")

    def __init__(self, *args, **kwargs):  # everything is done in __new__
        pass

    @classmethod
    def of(cls, value, requires_grad, name, path=None, layout=None):
        """A weight of `value` (its storage shared) with its Keras name, path and layout."""
        return _rebuild(cls, value.detach(), requires_grad, {})._describe(name, path, layout)


class BufferVariable(_KerasVariableAPI, torch.Tensor):
    """A non-trainable weight registered as a buffer, with Keras' Variable API."""

    __torch_function__ = _disabled_torch_function_impl

    @classmethod
    def of(cls, value, name, path=None, layout=None):
        return _rebuild(cls, value.detach(), False, {})._describe(name, path, layout)


def _initial_value(initializer, shape, dtype):
    from lamina import initializers
    from lamina.ops.core import convert_to_tensor, standardize_dtype

    dtype = standardize_dtype(dtype)
    if initializer is None:
        raise ValueError("Variable needs an `initializer`: an initial value, or an initializer "
                         "name such as 'zeros' together with `shape`.")
    if isinstance(initializer, str) or (callable(initializer) and not isinstance(initializer, torch.Tensor)):
        if shape is None:
            raise ValueError(f"Variable: initializer {initializer!r} needs a `shape`.")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return initializers.get(initializer)(shape, dtype or torch.float32)
    value = convert_to_tensor(initializer, dtype=dtype).detach().clone()
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"Variable: the initial value has shape {tuple(value.shape)}, but "
                         f"shape={tuple(shape)} was given.")
    return value
