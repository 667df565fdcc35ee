"""Data-parallel fit: the training script of fit_script.py run by torchrun with 2 gloo processes on
the CPU ends with the weights, histories and evaluation of the same script run by one process
(same global batches), and only rank 0 writes files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lamina
from lamina import distributed

ROOT = Path(__file__).parents[2]


def _run(args, out):
    out.mkdir()
    # CPU processes with gloo even on a GPU machine (two ranks cannot share one GPU under NCCL).
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, *args, "-m", "tests.distributed.fit_script", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("data_parallel")
    single = _run([], base / "single")
    parallel = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], base / "ddp")
    for proc in (single, parallel):
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output
    load = lambda path: torch.load(path, weights_only=False)  # noqa: E731
    return (base, load(base / "single" / "result-rank0.pt"),
            [load(base / "ddp" / f"result-rank{r}.pt") for r in range(2)])


def _assert_same_weights(a, b, atol=1e-6):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        np.testing.assert_allclose(wa, wb, atol=atol, rtol=0)


@pytest.mark.parametrize("case", ["arrays", "loader", "unused_output"])
def test_two_processes_train_as_one_over_the_same_global_batches(runs, case):
    _, single, ranks = runs
    for rank in ranks:
        _assert_same_weights(rank[case]["weights"], single[case]["weights"])
        assert rank[case]["history"].keys() == single[case]["history"].keys()
        for key, values in single[case]["history"].items():  # metrics of the whole data
            np.testing.assert_allclose(rank[case]["history"][key], values, atol=1e-6)
    if case == "arrays":
        assert set(single[case]["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for rank in ranks:
            for key, value in single[case]["evaluate"].items():
                assert rank[case]["evaluate"][key] == pytest.approx(value, abs=1e-6)


def test_per_process_batch_normalization_ends_with_one_model(runs):
    _, single, ranks = runs
    # Each process normalized its own half-batches, so the run is not the single-process one...
    assert not all(np.allclose(a, b, atol=1e-4) for a, b in
                   zip(ranks[0]["per_rank_bn"]["weights"], single["per_rank_bn"]["weights"]))
    # ...but the moving statistics were averaged: every process holds the same model.
    _assert_same_weights(ranks[0]["per_rank_bn"]["weights"], ranks[1]["per_rank_bn"]["weights"], atol=0)


def test_only_rank_zero_writes_files(runs):
    base, _, _ = runs
    written = sorted(p.name for p in (base / "ddp").iterdir())
    assert written == ["backup", "ckpt-rank0-1.lamina", "ckpt-rank0-2.lamina", "final-rank0.lamina",
                       "log-rank0.csv", "result-rank0.pt", "result-rank1.pt"]
    restored = lamina.load_model(base / "ddp" / "final-rank0.lamina")
    assert [w.shape for w in restored.get_weights()] == [w.shape for w in lamina.load_model(
        base / "single" / "final-rank0.lamina").get_weights()]


def test_torchrun_environment_before_the_group_starts(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (1, 2, False)
    assert distributed.rank_zero_only(lambda: "written")() is None
    callbacks = [lamina.callbacks.CSVLogger("log.csv"), lamina.callbacks.EarlyStopping(),
                 lamina.callbacks.ModelCheckpoint("m.lamina")]
    assert distributed.callbacks_for_this_process(callbacks) == [callbacks[1]]
    monkeypatch.setenv("RANK", "0")
    assert distributed.rank_zero_only(lambda: "written")() == "written"


def test_every_global_batch_must_reach_every_process():
    # 50 samples in batches of 8 leave a last batch of 2: fine for 2 processes, not for 3.
    distributed._check_every_rank_gets_samples(50, 8, 2)
    with pytest.raises(ValueError, match=r"global batch of 2 sample\(s\) cannot be split across 3 "
                                         r"processes.*Received: batch_size=8"):
        distributed._check_every_rank_gets_samples(50, 8, 3)
    with pytest.raises(ValueError, match="global batch of 2 sample"):
        distributed._check_every_rank_gets_samples(50, 2, 4)
