"""lamina's operators seen from outside: a dispatch mode or a tensor subclass sees each call as
the operator itself (the direct call of its kernel, which saves a dispatch for plain tensors, must
not bypass them), and every operator has fake, autograd and vmap registrations."""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lamina import layers


class _Recording(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


def _calls(mode_or_none, layer, x):
    with torch.no_grad(), mode_or_none or contextlib.nullcontext():
        return layer(x)


def test_a_dispatch_mode_sees_the_operators_and_gets_the_same_numbers():
    x = torch.randn(4, 6, 8)
    dense, norm = layers.Dense(5, activation="relu"), layers.LayerNormalization()
    bn = layers.BatchNormalization()
    for layer in (dense, norm, bn):
        layer(x)
    for layer, op in ((dense, torch.ops.lamina.linear.default), (norm, torch.ops.lamina.normalize.default),
                      (bn, torch.ops.lamina.normalize_with.default)):
        plain = _calls(None, layer, x)
        mode = _Recording()
        recorded = _calls(mode, layer, x)
        assert op in mode.seen, (layer.name, mode.seen)
        torch.testing.assert_close(recorded, plain, rtol=0, atol=0)


def test_a_fake_tensor_reaches_the_fake_registration():
    """Fake tensors (torch.compile's) get shapes from each operator's fake function, never its
    kernel (which would read their missing data)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    dense = layers.Dense(5)
    dense(torch.randn(2, 3))
    with FakeTensorMode(allow_non_fake_inputs=True) as fake:
        x = fake.from_tensor(torch.randn(7, 3))
        with torch.no_grad():
            y = torch.ops.lamina.linear(x, dense.kernel, dense.bias, True)
    assert tuple(y.shape) == (7, 5)
