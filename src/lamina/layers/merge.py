"""Merge layers: combine a list of tensors into one.

Add, Subtract, Multiply, Average, Maximum and Minimum are one elementwise merge that differs only
in its binary operation; inputs broadcast as in Keras (sizes equal or 1; an input of lower rank
gets new axes right after the batch axis). Concatenate joins along an axis, Dot takes batched dot
products. The lowercase functions (`add([x1, x2])`, ...) are Keras' functional shortcuts.

Masks merge as in Keras: the output of an elementwise merge is masked where every input is masked
(the union of the valid steps), Maximum and Minimum ignore masked entries, Multiply treats them as
1; Concatenate joins the masks; Dot drops them.
"""

from __future__ import annotations

import functools
import math

import torch

from lamina.layers.base import Layer

__all__ = [
    "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot",
    "concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum", "dot",
]


def _broadcastable(mask, x):
    """A mask over x's leading axes, with trailing size-1 axes so that it broadcasts over x."""
    return mask.reshape(*mask.shape, *(1,) * (x.ndim - mask.ndim))


class _ListInput(Layer):
    """A layer called on a list of tensors; `n_inputs` fixes how many when not None."""

    supports_masking = True
    n_inputs = None

    def _describe(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _check_list(self, shapes) -> list:
        if not isinstance(shapes, (list, tuple)) or not shapes or not all(
            isinstance(s, (list, tuple)) for s in shapes
        ):
            raise ValueError(
                f"{self._describe()} must be called on a list of tensors, e.g. "
                f"{type(self).__name__}()([x1, x2]). Received input shape: {shapes}"
            )
        if self.n_inputs is not None and len(shapes) != self.n_inputs:
            raise ValueError(
                f"{self._describe()} must be called on exactly {self.n_inputs} inputs. "
                f"Received {len(shapes)}: shapes {list(shapes)}"
            )
        return [tuple(s) for s in shapes]

    def _check_batch_sizes(self, shapes) -> None:
        if len({s[0] for s in shapes if s} - {None}) > 1:
            raise ValueError(
                f"{self._describe()} cannot merge tensors with different batch sizes. "
                f"Received shapes {shapes}"
            )

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    @staticmethod
    def _shapes(inputs):
        """The shapes of a list of tensors (a lone tensor's own shape, which _check_list rejects)."""
        if isinstance(inputs, (list, tuple)):
            return [tuple(x.shape) for x in inputs]
        return tuple(inputs.shape)


class _ElementwiseMerge(_ListInput):
    """Merges the inputs with a binary operation applied left to right."""

    @staticmethod
    def _op(a, b):
        raise NotImplementedError

    def _broadcast(self, shape1, shape2):
        """Keras' broadcasting of two sample shapes, aligned on their last axes."""
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        out = list(shape1[: len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1 or j == 1 or i == j:
                out.append(j if i == 1 else i)
            else:
                raise ValueError(
                    f"{self._describe()}: inputs have incompatible shapes {shape1} and {shape2} "
                    "(without the batch axis); each axis must have the same size, or 1 to "
                    "broadcast."
                )
        return tuple(out)

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        self._check_batch_sizes(shapes)
        sample = functools.reduce(self._broadcast, [s[1:] for s in shapes])
        batch = next((s[0] for s in shapes if s[0] is not None), None)
        return (batch, *sample)

    def call(self, inputs, mask=None):
        self.compute_output_shape(self._shapes(inputs))
        rank = max(x.ndim for x in inputs)
        masks = list(mask) if mask is not None else [None] * len(inputs)
        if any(x.ndim != rank for x in inputs):
            # As in Keras, new axes go after the batch axis; the reshaped inputs carry no masks.
            inputs = [x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in inputs]
            masks = [None] * len(inputs)
        return self._merge(list(inputs), masks)

    def _merge(self, inputs, masks):
        return functools.reduce(self._op, inputs)

    def compute_mask(self, inputs, mask=None):
        if mask is None or any(m is None for m in mask):
            return None
        return functools.reduce(torch.logical_or, mask)


class Add(_ElementwiseMerge):
    """Adds a list of tensors of the same shape (or broadcastable ones).

    Input shape: a list of tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Add()([torch.ones(2, 3), torch.ones(2, 3)]).tolist()
        [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """

    _op = staticmethod(torch.add)


class Subtract(_ElementwiseMerge):
    """Subtracts the second of exactly two inputs from the first: `inputs[0] - inputs[1]`.

    Input shape: a list of two tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Subtract()([torch.ones(2, 3), torch.ones(2, 3)]).abs().sum()
        tensor(0.)
    """

    n_inputs = 2
    _op = staticmethod(torch.sub)


class Multiply(_ElementwiseMerge):
    """Multiplies a list of tensors elementwise. Masked entries count as 1; where every input is
    masked the output is 0.

    Input shape: a list of tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Multiply()([torch.full((2, 3), 2.0), torch.full((2, 3), 3.0)])[0, 0]
        tensor(6.)
    """

    _op = staticmethod(torch.mul)

    def _merge(self, inputs, masks):
        every_input_masked = all(m is not None for m in masks)
        output = valid = None
        for x, m in zip(inputs, masks):
            if m is not None:
                m = _broadcastable(m, x)
                x = torch.where(m, x, 1)
                valid = m if valid is None else valid | m
            output = x if output is None else self._op(output, x)
        return torch.where(valid, output, 0) if every_input_masked else output


class Average(_ElementwiseMerge):
    """Averages a list of tensors elementwise.

    Input shape: a list of tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Average()([torch.zeros(2, 3), torch.ones(2, 3)])[0, 0]
        tensor(0.5000)
    """

    _op = staticmethod(torch.add)

    def _merge(self, inputs, masks):
        return super()._merge(inputs, masks) / len(inputs)


class _Extremum(_ElementwiseMerge):
    """Maximum/Minimum: a masked entry takes the other operand's value, so it never wins."""

    def _merge(self, inputs, masks):
        output, output_mask = inputs[0], masks[0]
        if output_mask is not None:
            output_mask = _broadcastable(output_mask, output)
        for x, m in zip(inputs[1:], masks[1:]):
            if m is not None:
                m = _broadcastable(m, x)
                x = torch.where(m, x, output)
            if output_mask is not None:
                output = torch.where(output_mask, output, x)
            output_mask = output_mask | m if output_mask is not None and m is not None else None
            output = self._op(output, x)
        return output


class Maximum(_Extremum):
    """The elementwise maximum of a list of tensors.

    Input shape: a list of tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Maximum()([torch.tensor([[1.0, 5.0]]), torch.tensor([[3.0, 2.0]])])
        tensor([[3., 5.]])
    """

    _op = staticmethod(torch.maximum)


class Minimum(_Extremum):
    """The elementwise minimum of a list of tensors.

    Input shape: a list of tensors (batch, ...). Output shape: their broadcast shape.

    Example:
        >>> Minimum()([torch.tensor([[1.0, 5.0]]), torch.tensor([[3.0, 2.0]])])
        tensor([[1., 2.]])
    """

    _op = staticmethod(torch.minimum)


class Concatenate(_ListInput):
    """Concatenates a list of tensors along `axis`; all other axes must match.

    Args:
        axis: the axis to concatenate along (default -1, the features).

    Input shape: a list of tensors of equal rank. Output shape: the same, with the sizes along
    `axis` summed.

    Example:
        >>> Concatenate()([torch.ones(2, 3), torch.zeros(2, 4)]).shape
        torch.Size([2, 7])
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"Concatenate: `axis` must be an int. Received: axis={axis!r}")
        self.axis = axis

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(
                f"{self._describe()}: all inputs must have the same rank, with axis={self.axis} "
                f"among their axes. Received shapes {shapes}"
            )
        axis = self.axis % rank
        out = list(shapes[0])
        for shape in shapes[1:]:
            for i, (have, got) in enumerate(zip(out, shape)):
                if i == axis:
                    out[i] = None if have is None or got is None else have + got
                elif have is None:
                    out[i] = got
                elif got is not None and got != have:
                    raise ValueError(
                        f"{self._describe()} requires inputs with matching shapes except along the "
                        f"concatenation axis {self.axis}; axis {i} differs. Received shapes {shapes}"
                    )
        return tuple(out)

    def call(self, inputs):
        self.compute_output_shape(self._shapes(inputs))
        return torch.cat(list(inputs), dim=self.axis)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        # Every input's mask spread over its entries (all valid where it has none), joined like
        # the inputs, then reduced over the last axis as Keras does.
        full = [torch.ones_like(x, dtype=torch.bool) if m is None
                else _broadcastable(m, x).expand(x.shape) for x, m in zip(inputs, mask)]
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_ListInput):
    """Batched dot products of two tensors along one axis of each.

    For x of shape (batch, 3, 5) and y of shape (batch, 10, 3), `Dot(axes=(1, 2))` sums over the
    axes of size 3 and returns (batch, 5, 10).

    Args:
        axes: int (the same axis of both inputs) or pair (axis of x, axis of y); not the batch
            axis 0. Negative values count from the end.
        normalize: whether to L2-normalize both inputs along their dot axes first, which makes the
            output the cosine similarity.

    Input shape: a list of two tensors of rank >= 2. Output shape: x's axes without the dot axis,
    then y's without batch and dot axes; (batch, 1) when that leaves only the batch axis.

    Example:
        >>> Dot(axes=1)([torch.ones(2, 4), torch.ones(2, 4)]).tolist()
        [[4.0], [4.0]]
    """

    n_inputs = 2
    supports_masking = False

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        valid = isinstance(axes, int) or (
            isinstance(axes, (list, tuple)) and len(axes) == 2 and all(isinstance(a, int) for a in axes)
        )
        if not valid or isinstance(axes, bool):
            raise ValueError(
                f"Dot: `axes` must be an int or a pair of ints (axis of the first input, axis of "
                f"the second). Received: axes={axes!r}"
            )
        self.axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
        self.normalize = bool(normalize)

    def _resolved_axes(self, shapes):
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        resolved = [a % len(s) if a < 0 else a for a, s in zip(axes, shapes)]
        if any(len(s) < 2 for s in shapes) or any(a == 0 or a >= len(s) for a, s in zip(resolved, shapes)):
            raise ValueError(
                f"{self._describe()}: axes={self.axes} must name a non-batch axis of each input "
                f"(inputs of rank >= 2). Received shapes {shapes}"
            )
        (x, y), (ax, ay) = shapes, resolved
        if x[ax] is not None and y[ay] is not None and x[ax] != y[ay]:
            raise ValueError(
                f"{self._describe()}: the dot axes must have the same size, but axis {ax} of the "
                f"first input has {x[ax]} and axis {ay} of the second has {y[ay]}. Received shapes "
                f"{shapes}"
            )
        return resolved

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        self._check_batch_sizes(shapes)
        (x, y), (ax, ay) = shapes, self._resolved_axes(shapes)
        out = (*x[:ax], *x[ax + 1:], *(d for i, d in enumerate(y) if i not in (0, ay)))
        return out if len(out) > 1 else (*out, 1)

    def call(self, inputs):
        shapes = self._shapes(inputs)
        self.compute_output_shape(shapes)
        (x, y), (ax, ay) = inputs, self._resolved_axes(shapes)
        if self.normalize:
            x, y = _l2_normalize(x, ax), _l2_normalize(y, ay)
        x, y = x.movedim(ax, -1), y.movedim(ay, 1)
        batch, size = x.shape[0], x.shape[-1]
        rows, cols = x.shape[1:-1], y.shape[2:]
        out = torch.bmm(x.reshape(batch, math.prod(rows), size), y.reshape(batch, size, math.prod(cols)))
        out = out.reshape(batch, *rows, *cols)
        return out if out.ndim > 1 else out.unsqueeze(1)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(x, axis):
    # x / ||x||, with the inverse norm capped at 1e7 (Keras' epsilon 1e-7) for all-zero vectors.
    return x * torch.rsqrt(x.square().sum(axis, keepdim=True)).clamp(max=1e7)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of Concatenate: `concatenate([x1, x2])` is `Concatenate()([x1, x2])`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def add(inputs, **kwargs):
    """Functional form of Add: `add([x1, x2])` is `Add()([x1, x2])`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """Functional form of Subtract: `subtract([x1, x2])` is `Subtract()([x1, x2])`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """Functional form of Multiply: `multiply([x1, x2])` is `Multiply()([x1, x2])`."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """Functional form of Average: `average([x1, x2])` is `Average()([x1, x2])`."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """Functional form of Maximum: `maximum([x1, x2])` is `Maximum()([x1, x2])`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """Functional form of Minimum: `minimum([x1, x2])` is `Minimum()([x1, x2])`."""
    return Minimum(**kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """Functional form of Dot: `dot([x1, x2], axes=1)` is `Dot(axes=1)([x1, x2])`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
