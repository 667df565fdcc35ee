import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402

# The suite is CPU-exact against Keras on the CPU; on a GPU machine bench/gpu_check.py covers CUDA
# (TF32 and kernel choices there would not hold 1e-5 everywhere).
lamina.config.set_device("cpu")


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts with fresh layer names and a fixed seed."""
    lamina.utils.clear_session()
    lamina.utils.set_random_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def count_calls(monkeypatch):
    """count_calls(owner, name) replaces owner.name with a wrapper that records each call's first
    argument's shape in the returned list, then calls the original."""

    def install(owner, name):
        made, real = [], getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a: made.append(a[0].shape) or real(*a))
        return made

    return install


@pytest.fixture
def generic_blas(monkeypatch):
    """lamina's Dense routes (matrix-vector loop, oneDNN's matmul, the Dense chain) as on a CPU
    where torch's BLAS runs a generic path, so that their tests run on every machine (on Intel
    CPUs they are off: MKL is faster there)."""
    from lamina.kernels import linear

    monkeypatch.setattr(linear, "blas_is_generic", lambda: True)

