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


def test_a_fake_tensor_reaches_the_fake_registration(generic_blas, monkeypatch):
    """Fake tensors (torch.compile's) get shapes from each operator's fake function; its kernel,
    which would hand their missing data to a compiled loop, is never entered."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from lamina.kernels import linear

    entered = []
    real = linear.uses_matvec  # the kernel's first decision
    monkeypatch.setattr(linear, "uses_matvec", lambda *a: entered.append(a) or real(*a))
    dense = layers.Dense(500)
    dense(torch.randn(1, 500))
    entered.clear()
    with FakeTensorMode(allow_non_fake_inputs=True) as fake:
        x = fake.from_tensor(torch.randn(1, 500))  # one row: the matrix-vector loop's case
        with torch.no_grad():
            y = torch.ops.lamina.linear(x, dense.kernel, dense.bias, True)
    assert tuple(y.shape) == (1, 500) and entered == []
    with torch.no_grad():
        torch.ops.lamina.linear(torch.randn(1, 500), dense.kernel, dense.bias, True)
    assert len(entered) == 1  # a real tensor does enter it


def test_dense_routes_follow_the_blas(monkeypatch, count_calls, rng):
    """lamina's matrix-vector loop and oneDNN route apply only where torch's BLAS runs a generic
    path: MKL on a CPU not Intel's, or no MKL. On an Intel CPU with MKL, Dense's products are
    torch's F.linear."""
    from lamina.kernels import linear

    linear.blas_is_generic.cache_clear()
    try:
        monkeypatch.setattr(linear, "_cpu_vendor", lambda: "AuthenticAMD")
        assert linear.blas_is_generic()
        linear.blas_is_generic.cache_clear()
        monkeypatch.setattr(linear, "_cpu_vendor", lambda: "GenuineIntel")
        assert linear.blas_is_generic() is (not torch.backends.mkl.is_available())
        if torch.backends.mkl.is_available():
            loop, onednn = count_calls(linear, "small_linear"), count_calls(linear, "onednn_product")
            layer = layers.Dense(500, activation="relu")
            x = torch.as_tensor(rng.standard_normal((1, 500)).astype("float32"))
            with torch.no_grad():
                layer(x)
                layer(x.expand(32, -1).contiguous())
            layer(x.expand(32, -1).contiguous()).sum().backward()
            assert loop == [] and onednn == []
    finally:
        linear.blas_is_generic.cache_clear()
