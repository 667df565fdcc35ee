import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402


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
