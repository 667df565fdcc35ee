"""lamina._native: the C kernels' build, cache and fallback."""

import ctypes
import shutil

import pytest

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
