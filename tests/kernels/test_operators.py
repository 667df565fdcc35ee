"""lamina's operators seen from outside: a dispatch mode or a tensor subclass sees each call as
the operator itself (the direct call of its kernel, which saves a dispatch for plain tensors, must
not bypass them), and every operator has fake, autograd and vmap registrations."""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lamina import layers


class _Records:
    """A mode that records the operators it sees."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _record(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


class _Recording(_Records, TorchDispatchMode):
    __torch_dispatch__ = _Records._record


class _FunctionRecording(_Records, torch.overrides.TorchFunctionMode):
    __torch_function__ = _Records._record


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


def _norm_and_conv():
    x = torch.randn(2, 10, 4)
    norm, conv = layers.BatchNormalization(), layers.Conv1D(3, 3)
    for layer in (norm, conv):
        layer(x)
    return x, ((norm, torch.ops.lamina.normalize_with.default), (conv, torch.ops.lamina.convolution.default))


def test_function_modes_and_the_profiler_see_the_operators():
    """A plain eager call runs an operator's kernel without the dispatcher; a torch function mode
    and torch's profiler, which watch operator calls, must still see each one."""
    x, pairs = _norm_and_conv()
    for layer, op in pairs:
        plain = _calls(None, layer, x)
        mode = _FunctionRecording()
        torch.testing.assert_close(_calls(mode, layer, x), plain, rtol=0, atol=0)
        assert op in mode.seen, (layer.name, mode.seen)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            torch.testing.assert_close(_calls(None, layer, x), plain, rtol=0, atol=0)
        names = {event.name for event in prof.events()}
        assert op.name() in names, (layer.name, sorted(n for n in names if "lamina" in n))


def test_graph_capture_sees_the_operators():
    """torch.compile's graph holds lamina's operators as nodes (the direct kernel call is eager
    only), with the eager numbers."""
    x, pairs = _norm_and_conv()
    for layer, op in pairs:
        seen = []

        def backend(graph, example_inputs, seen=seen):
            seen.extend(node.target for node in graph.graph.nodes if node.op == "call_function")
            return graph.forward

        torch._dynamo.reset()
        with torch.no_grad():
            compiled = torch.compile(layer, backend=backend, fullgraph=True)(x)
        torch.testing.assert_close(compiled, _calls(None, layer, x), rtol=0, atol=0)
        assert op in seen or op.overloadpacket in seen, (layer.name, seen)
