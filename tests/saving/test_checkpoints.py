"""ModelCheckpoint and BackupAndRestore: files named as asked, the best kept, and interrupted
runs — by an exception, or by SIGKILL at random moments, mid-write included — resuming to final
weights bitwise equal to those of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.torch
import torch

import lamina
from lamina import layers
from lamina.callbacks import BackupAndRestore, Callback, ModelCheckpoint
from lamina.saving import SavingError, checkpoint
from tests.saving import crash_worker


def _model(seed=1):
    lamina.utils.set_random_seed(seed)
    model = lamina.Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"),
                               layers.Dropout(0.3), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


X = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
Y = (X.sum(1) > 0).astype("int64")


class _Snapshots(Callback):
    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append({k: v.clone() for k, v in self.model.state_dict().items()})


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_filepath_templates_and_every_epoch(tmp_path):
    model = _model()
    model.fit(X, Y, epochs=3, validation_split=0.25, verbose=0, callbacks=[
        ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.lamina", monitor="val_loss")])
    names = sorted(os.listdir(tmp_path))
    assert [n[:8] for n in names] == ["ckpt-01-", "ckpt-02-", "ckpt-03-"]
    assert all(lamina.load_model(tmp_path / n).compiled for n in names)


def test_save_best_only_keeps_the_best_epoch(tmp_path):
    model, snapshots = _model(), _Snapshots()
    history = model.fit(X, Y, epochs=5, validation_split=0.25, verbose=0, callbacks=[
        ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss", save_best_only=True,
                        save_weights_only=True), snapshots])
    best = int(np.argmin(history.history["val_loss"]))
    saved = safetensors.torch.load_file(tmp_path / "best.safetensors")
    assert _same_state(saved, snapshots.states[best])
    assert not _same_state(saved, snapshots.states[-1]) or best == 4


def test_batch_frequency_and_bad_arguments(tmp_path):
    model = _model()
    model.fit(X, Y, batch_size=10, epochs=2, verbose=0, callbacks=[
        ModelCheckpoint(tmp_path / "e{epoch}b{batch}.lamina", save_freq=3)])
    assert sorted(os.listdir(tmp_path)) == ["e1b3.lamina", "e2b2.lamina"]  # batches 3, 6 of 4+4
    with pytest.raises(ValueError, match=r"must end in \.keras or \.lamina"):
        ModelCheckpoint(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5 or \.safetensors"):
        ModelCheckpoint(tmp_path / "m.lamina", save_weights_only=True)
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(tmp_path, save_freq=0)
    with pytest.raises(ValueError, match="log keys"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[ModelCheckpoint(tmp_path / "{nothing}.lamina")])
    with pytest.warns(UserWarning, match="not in the logs"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[
            ModelCheckpoint(tmp_path / "x.lamina", monitor="val_auc", save_best_only=True)])


class _Interrupt(Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("epoch, batch, save_freq", [(1, 4, "epoch"), (2, 1, 1), (0, 2, 2),
                                                    (3, 4, 1)])
def test_interrupted_fit_resumes_bitwise(tmp_path, epoch, batch, save_freq):
    reference = _model()
    expected = reference.fit(X, Y, batch_size=8, epochs=4, verbose=0).history
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(X, Y, batch_size=8, epochs=4, verbose=0, callbacks=[
            BackupAndRestore(backup, save_freq=save_freq), _Interrupt(epoch, batch)])
    resumed = _model()
    history = resumed.fit(X, Y, batch_size=8, epochs=4, verbose=0,
                          callbacks=[BackupAndRestore(backup, save_freq=save_freq)])
    assert _same_state(resumed.state_dict(), reference.state_dict())
    n = len(history.history["loss"])
    assert history.history == {k: v[-n:] for k, v in expected.items()}  # metrics of a resumed epoch too
    assert not backup.exists()  # delete_checkpoint=True


def test_double_checkpoint_falls_back_on_a_broken_backup(tmp_path):
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[
            BackupAndRestore(backup, double_checkpoint=True), _Interrupt(2, 0)])
    (backup / "backup.lamina").write_bytes(b"garbage")
    resumed = _model()
    with pytest.warns(UserWarning, match="previous backup"):
        history = resumed.fit(X, Y, batch_size=8, epochs=3, verbose=0,
                              callbacks=[BackupAndRestore(backup, double_checkpoint=True)])
    assert len(history.history["loss"]) == 2  # the previous backup is from the end of epoch 1
    (backup_dir := tmp_path / "only").mkdir()
    (backup_dir / "backup.lamina").write_bytes(b"garbage")
    with pytest.raises(SavingError):
        _model().fit(X, Y, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup_dir)])


def test_sigkill_at_random_moments(tmp_path):
    """At least 20 kills of a training process at random moments; it saves at every step, so
    many land in the middle of a write (which leaves its temporary file behind). After each kill
    the backup and the last ModelCheckpoint file load; the restarted run resumes from the backup,
    and every run that gets to finish has the weights of an uninterrupted run."""
    expected = crash_worker.train().state_dict()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    chooser = random.Random(1234)
    kills = mid_write = campaign = 0
    folder = None

    def new_campaign():
        nonlocal folder, campaign
        campaign += 1
        folder = tmp_path / f"run{campaign}"
        folder.mkdir()

    def run(wait=None):
        """Start the worker; kill it `wait` seconds after training begins (None: let it end).
        Returns the seconds from the start of training to the end or the kill."""
        with open(tmp_path / "stderr.txt", "w+b") as errors:
            process = subprocess.Popen([sys.executable, "-m", "tests.saving.crash_worker",
                                        str(folder)], stdout=subprocess.PIPE, stderr=errors, env=env)
            if process.stdout.readline().strip() != b"ready":
                process.wait()
                errors.seek(0)
                raise AssertionError(f"the worker failed:\n{errors.read().decode()}")
        began = time.perf_counter()
        if wait is None:
            assert process.wait(timeout=300) == 0
        else:
            time.sleep(wait)
            process.send_signal(signal.SIGKILL)
            process.wait()
        return time.perf_counter() - began

    def check_finished():
        final = safetensors.torch.load_file(folder / "final.safetensors")
        assert _same_state(final, expected)

    new_campaign()
    duration = run()  # one uninterrupted run in a process: how long a kill may wait
    check_finished()
    new_campaign()
    while kills < 20 or (mid_write == 0 and kills < 100):  # go on until a kill lands mid-write
        run(chooser.uniform(0.0, duration))
        kills += 1
        backup_dir = folder / "backup"
        names = os.listdir(backup_dir) if backup_dir.exists() else []
        mid_write += any(n.endswith(".tmp") for n in names)
        if "backup.lamina" in names:
            model = crash_worker.build()
            model.optimizer.build(model.parameters())
            resume = checkpoint.load_checkpoint(model, backup_dir / "backup.lamina")
            assert 0 <= resume.epoch <= crash_worker.EPOCHS
        else:  # killed before the first backup was complete: at most a partial write is there
            assert not [n for n in names if n.endswith(".lamina")], names
        if (folder / "last.lamina").exists():
            lamina.load_model(folder / "last.lamina")
        if (folder / "final.safetensors").exists():  # training had finished: start anew
            check_finished()
            new_campaign()
    run()
    check_finished()
    assert mid_write >= 1, "no kill landed in the middle of a write"
