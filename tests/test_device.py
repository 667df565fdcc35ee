"""Device choice: lamina.config.set_device/get_device, fit(device=...), and the placement rules
(explicit device, then set_device, then an accelerator the user chose, then the automatic one).
This machine has no accelerator: availability is simulated where a rule needs one."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lamina
from lamina import config, layers


@pytest.fixture(autouse=True)
def _automatic_device():
    """Each test starts from the automatic choice (the suite's conftest pins the CPU, which a
    test run first in its worker would otherwise see) and leaves the pin as it found it."""
    config.set_device(None)
    config._automatic_device.cache_clear()  # made once per process; these tests fake machines
    yield
    config._automatic_device.cache_clear()
    config.set_device("cpu")


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(config, "_accelerator_count", lambda kind: 2 if kind == "cuda" else 0)


def test_automatic_choice_and_override_on_a_cpu_machine():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this test describes a machine without accelerators")
    assert config.get_device() == torch.device("cpu")
    config.set_device("cpu")
    assert config.get_device() == torch.device("cpu")
    config.set_device(None)
    assert config.get_device() == torch.device("cpu")


def test_unknown_or_missing_devices_are_refused(monkeypatch):
    monkeypatch.setattr(config, "_accelerator_count", lambda kind: 0)
    with pytest.raises(ValueError, match=r"must name a torch device.*Received: device='gpu0'"):
        config.set_device("gpu0")
    with pytest.raises(ValueError, match=r"'cuda' is not available on this machine.*Received: device='cuda'"):
        config.set_device("cuda")
    with pytest.raises(ValueError, match=r"'xpu' is not available"):
        config.resolve_device("xpu")


def test_gpu_numbering_and_torchrun_local_rank(two_gpus, monkeypatch):
    assert config.get_device() == torch.device("cuda", 0)
    assert config.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist: this machine has 2 cuda device"):
        config.resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun: each process takes its own GPU
    config._automatic_device.cache_clear()  # (torchrun sets it before the process starts)
    assert config.get_device() == torch.device("cuda", 1)


def test_placement_rules(two_gpus):
    cpu, gpu1 = torch.device("cpu"), torch.device("cuda", 1)
    assert config.placement(cpu) == torch.device("cuda", 0)  # a new model goes to the accelerator
    assert config.placement(gpu1) == gpu1  # a model the user put on a GPU stays there
    assert config.placement(gpu1, "cpu") == cpu  # fit(device=...) wins
    config.set_device("cpu")
    assert config.placement(gpu1) == cpu  # then set_device


def test_fit_on_a_named_device(rng):
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 4)).astype("float32"), rng.integers(0, 2, 8)
    model.fit(x, y, epochs=1, verbose=0, device="cpu")
    assert model._device() == torch.device("cpu")
    if not torch.cuda.is_available():
        before = model.get_weights()
        with pytest.raises(ValueError, match="'cuda' is not available"):
            model.fit(x, y, epochs=1, verbose=0, device="cuda")
        for w, w0 in zip(model.get_weights(), before):  # refused before any step
            np.testing.assert_array_equal(w, w0)


def test_gpu_check_skips_cleanly_without_cuda():
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "bench/gpu_check.py"], cwd=root, capture_output=True, text=True,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "", "KERAS_BACKEND": "torch"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout


def test_gpu_check_parity_code_runs(capsys):
    """The parity section, pointed at the CPU: a copy of each layer agrees with itself, so the
    script a GPU machine runs is known to work up to the device."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from bench import gpu_check

    assert gpu_check.check_parity(torch.device("cpu")) == []
    assert capsys.readouterr().out.count(" ok\n") == len(gpu_check.parity_cases())
