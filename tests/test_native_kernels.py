"""lamina._native: the C kernels' build, cache and fallback."""

import ctypes
import shutil

import pytest
import torch

from lamina import _native

SOURCE = "void lamina_probe_add(int *x, int y) { *x += y; }\n"
SIGNATURES = {"lamina_probe_add": [_native.POINTER, _native.INT]}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_builds_caches_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path))
    lib = _native.load("probe", SOURCE, SIGNATURES, "probes run in Python")
    value = ctypes.c_int(40)
    lib.lamina_probe_add(ctypes.addressof(value), 2)
    assert value.value == 42
    built = list((tmp_path / "kernels").glob("probe_*.so"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    _native.load("probe", SOURCE, SIGNATURES, "probes run in Python")   # from the cache
    assert built[0].stat().st_mtime_ns == mtime


def test_without_a_compiler_warns_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.warns(UserWarning, match="probes run in Python.*LAMINA_NATIVE_KERNELS=0"):
        assert _native.load("probe", SOURCE, SIGNATURES, "probes run in Python") is None


def test_switched_off_builds_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LAMINA_NATIVE_KERNELS", "0")
    assert _native.load("probe", SOURCE, SIGNATURES, "probes run in Python") is None
    assert not (tmp_path / "kernels").exists()


def test_eager_is_false_under_graph_capture_functorch_and_autocast():
    """The one gate of lamina's own routes, against the contexts torch provides."""
    seen = {}

    def record(name, lowered_on=None):
        def f(t):
            seen[name] = _native.eager(lowered_on)
            return t * 2
        return f

    x = torch.ones(3)
    record("plain")(x)
    torch.jit.trace(record("traced"), x, check_trace=False)
    torch.func.vmap(record("vmapped"))(torch.ones(2, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        record("autocast, float32 op")(x)
        record("autocast, lowered op", lowered_on="cpu")(x)
        record("autocast on the CPU, op on CUDA tensors", lowered_on="cuda")(x)
    torch.compile(record("compiled"), backend="eager", fullgraph=False)(x)
    assert seen == {"plain": True, "traced": False, "vmapped": False, "autocast, float32 op": True,
                    "autocast, lowered op": False,
                    "autocast on the CPU, op on CUDA tensors": True, "compiled": False}
    assert _native.float32_cpu(x, None) and not _native.float32_cpu(x, x.double())


def test_single_sample_conv1d_under_autocast_keeps_autocasts_dtype(rng):
    """The direct oneDNN route of one Conv1D sample stands aside under CPU autocast: the output
    is bfloat16, as torch's own convolution gives it (the route once returned float32)."""
    from lamina import layers

    layer = layers.Conv1D(256, 5, padding="same")
    x = torch.as_tensor(rng.standard_normal((1, 150, 128)).astype("float32"))
    layer(x)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        expected = torch.nn.functional.conv1d(torch.nn.functional.pad(x.transpose(1, 2), (2, 2)),
                                              layer.kernel, layer.bias)
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected.transpose(1, 2).float(), rtol=2e-2, atol=5e-2)
