"""lamina's malloc tuning (lamina/_memory.py), an opt-in: which glibc settings it asks for, when
it leaves malloc alone, and that a fresh `import lamina` applies it only when the environment opts
in. (Its effect, page faults per training step, is measured rather than tested: glibc's own
adaptive thresholds make the count for the untuned allocator depend on the process's allocation
history.)"""

import json
import os
import subprocess
import sys

import pytest

import lamina
from lamina import _memory

PROBE = "import json, lamina; from lamina import _memory; print(json.dumps(_memory.TUNED))"


def imported(**env):
    base = {k: v for k, v in os.environ.items() if k != "LAMINA_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**base, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


class FakeLibc:
    """Records mallopt calls; mallopt is a plain object, as a ctypes function is, so that
    argtypes and restype can be set on it."""

    def __init__(self, accepts=True):
        self.calls, self.accepts = [], accepts
        self.gnu_get_libc_version = object()
        libc = self

        class Mallopt:
            def __call__(self, option, value):
                libc.calls.append((option, value))
                return int(libc.accepts)

        self.mallopt = Mallopt()


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(_memory.ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(_memory.sys, "platform", "linux")
    for name in ("LAMINA_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    return fake


def test_asks_glibc_for_both_thresholds(libc):
    assert lamina.config.tune_malloc() is True
    assert libc.calls == [(-3, 32 * 2**20), (-1, 512 * 2**20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "100000"}, {"MALLOC_MMAP_THRESHOLD_": "100000"}])
def test_the_users_own_settings_leave_malloc_alone(env, libc, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _memory.tune_malloc() is False
    assert libc.calls == []


def test_a_refusal_or_another_libc_reports_untuned(libc, monkeypatch):
    libc.accepts = False
    assert _memory.tune_malloc() is False
    del libc.gnu_get_libc_version  # not glibc (musl, or a preloaded allocator without it)
    libc.calls.clear()
    assert _memory.tune_malloc() is False and libc.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_import_applies_it_only_when_the_environment_opts_in():
    assert imported(LAMINA_MALLOC_TUNING="1") is True
    assert imported(LAMINA_MALLOC_TUNING="0") is False
    assert imported() is False
