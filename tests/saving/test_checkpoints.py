"""ModelCheckpoint and BackupAndRestore: files named as asked, the best kept, and interrupted
runs — by an exception, or by SIGKILL at random moments, mid-write included — resuming to final
weights bitwise equal to those of an uninterrupted run."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

import lamina
from lamina import layers
from lamina.callbacks import BackupAndRestore, Callback, ModelCheckpoint
from lamina.saving import SavingError, archive, checkpoint
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


def _backup_file(tmp_path, **kwargs):
    """The backup of a 3-epoch fit interrupted at the start of its last epoch."""
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[
            BackupAndRestore(backup, **kwargs), _Interrupt(2, 0)])
    return backup / "backup.lamina"


def _damage(path, progress=None, tensors=None, entries=None):
    """Rewrite the checkpoint at `path` (as a whole, valid archive) after `progress(dict)`,
    `tensors(dict)` and `entries(dict)` have changed its progress.json, progress.safetensors and
    raw entries."""
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    if progress is not None:
        plain = json.loads(files["progress.json"])
        progress(plain)
        files["progress.json"] = json.dumps(plain).encode()
    if tensors is not None:
        saved = dict(safetensors.torch.load(files["progress.safetensors"]))
        tensors(saved)
        files["progress.safetensors"] = safetensors.torch.save(saved)
    if entries is not None:
        entries(files)
    archive.write_archive(path, files)


def _drop_weight(files):
    saved = dict(safetensors.torch.load(files["model.safetensors"]))
    saved.pop(sorted(saved)[0])
    files["model.safetensors"] = safetensors.torch.save(saved)


def _set(*keys_value):
    *keys, value = keys_value

    def change(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value(d[keys[-1]]) if callable(value) else value
    return change


DAMAGES = {  # name: _damage's arguments; each once made fit raise a raw exception or load half
    "epoch a string": {"progress": _set("epoch", "two")},
    "epoch negative": {"progress": _set("epoch", -1)},
    "epoch overflowing": {"progress": _set("epoch", 1e300)},
    "epoch huge": {"progress": _set("epoch", 2**70)},
    "step a list": {"progress": _set("step", [1])},
    "rng missing": {"progress": lambda p: p.pop("rng")},
    "numpy kind": {"progress": _set("rng", "numpy", 0, "PCG64")},
    "numpy state short": {"tensors": _set("rng/numpy", lambda t: t[:10])},
    "numpy state overflowing": {"tensors": _set("epoch_start_rng/numpy", lambda t: t + 2**40)},
    "numpy state float": {"tensors": _set("rng/numpy", lambda t: t.double())},
    "torch state short": {"tensors": _set("rng/torch", lambda t: t[:100])},
    "torch state float": {"tensors": _set("epoch_start_rng/torch", lambda t: t.float())},
    "torch state missing": {"tensors": lambda t: t.pop("rng/torch")},
    "python state short": {"progress": _set("rng", "python", 1, lambda v: v[:10])},
    "python state overflowing": {"progress": _set("epoch_start_rng", "python", 1, 0, 2**80)},
    "python state a string": {"progress": _set("rng", "python", 1, 3, "x")},
    "python state null": {"progress": _set("rng", "python", None)},
    "python position out of range": {"progress": _set("rng", "python", 1, -1, 10**6)},
    "callbacks of the wrong type": {"progress": _set("callbacks", {"ModelCheckpoint": 1})},
    "callback state not a number": {"progress": _set("callbacks", [["ModelCheckpoint",
                                                                    {"best": "low"}]])},
    "progress not JSON": {"entries": _set("progress.json", b"{")},
    "progress a list": {"entries": _set("progress.json", b"[]")},
    "a weight missing": {"entries": _drop_weight},
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_a_saving_error_and_changes_nothing(tmp_path, damage):
    path = _backup_file(tmp_path)
    _damage(path, **DAMAGES[damage])
    model = _model(seed=5)
    model.train_on_batch(X[:8], Y[:8])  # an optimizer state to keep
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = model.optimizer
    slots = copy.deepcopy(optimizer.torch_optimizer.state_dict())
    generators = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    with pytest.raises(SavingError, match=re.escape(f"'{path}'")):
        checkpoint.load_checkpoint(model, path)
    assert _same_state(model.state_dict(), weights)
    assert int(optimizer.iterations) == 1
    now = optimizer.torch_optimizer.state_dict()
    assert now["param_groups"] == slots["param_groups"]
    assert all(_same_state(now["state"][i], slots["state"][i]) for i in slots["state"])
    assert torch.equal(torch.get_rng_state(), generators[0])
    assert np.array_equal(np.random.get_state()[1], generators[1])
    assert random.getstate() == generators[2]


def test_fit_falls_back_to_the_previous_backup_and_names_the_one_used(tmp_path):
    path = _backup_file(tmp_path, double_checkpoint=True)
    previous = f"{path}.bkp"
    _damage(path, **DAMAGES["torch state short"])
    with pytest.warns(UserWarning, match=re.escape(f"previous backup '{previous}'")):
        history = _model().fit(X, Y, batch_size=8, epochs=3, verbose=0,
                               callbacks=[BackupAndRestore(path.parent, double_checkpoint=True)])
    assert len(history.history["loss"]) == 2  # the previous backup is from the end of epoch 1
    path = _backup_file(tmp_path / "both", double_checkpoint=True)
    _damage(path, **DAMAGES["numpy state short"])
    _damage(f"{path}.bkp", **DAMAGES["python state null"])
    model = _model()
    model.train_on_batch(X[:8], Y[:8])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(SavingError, match=r"no backup in .* can be read") as error:
        model.fit(X, Y, epochs=3, verbose=0, callbacks=[BackupAndRestore(path.parent)])
    assert f"'{path}'" in str(error.value) and f"'{path}.bkp'" in str(error.value)
    assert _same_state(model.state_dict(), before)


class _FailAtEpochEnd(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_crash_between_an_epochs_files_loses_none(tmp_path):
    """BackupAndRestore writes its backup after the other callbacks' files, wherever it is in
    the list: a crash before ModelCheckpoint's file of epoch 2 is written re-runs epoch 2."""
    backup, files = tmp_path / "backup", str(tmp_path / "ep{epoch}.lamina")
    with pytest.raises(KeyboardInterrupt):
        _model().fit(X, Y, batch_size=8, epochs=4, verbose=0, callbacks=[
            BackupAndRestore(backup), _FailAtEpochEnd(1), ModelCheckpoint(files)])
    assert sorted(os.listdir(tmp_path)) == ["backup", "ep1.lamina"]
    _model().fit(X, Y, batch_size=8, epochs=4, verbose=0,
                 callbacks=[BackupAndRestore(backup), ModelCheckpoint(files)])
    assert sorted(os.listdir(tmp_path)) == [f"ep{i}.lamina" for i in (1, 2, 3, 4)]


def test_save_best_only_keeps_its_best_across_a_resume(tmp_path):
    """mode="max" on a falling val_loss: the best is the first epoch's, and a resumed run that
    forgot it would replace it by a later, lower one."""
    def fit(*extra):
        checkpoint_callback = ModelCheckpoint(tmp_path / "best.safetensors", save_best_only=True,
                                              save_weights_only=True, mode="max")
        _model().fit(X, Y, batch_size=8, epochs=4, validation_split=0.25, verbose=0,
                     callbacks=[BackupAndRestore(tmp_path / "backup"), checkpoint_callback, *extra])
        return checkpoint_callback

    reference, snapshots = _model(), _Snapshots()
    history = reference.fit(X, Y, batch_size=8, epochs=4, validation_split=0.25, verbose=0,
                            callbacks=[snapshots]).history["val_loss"]
    assert int(np.argmax(history)) == 0
    with pytest.raises(KeyboardInterrupt):
        fit(_Interrupt(2, 0))
    resumed = fit()
    assert resumed.best == history[0]
    saved = safetensors.torch.load_file(tmp_path / "best.safetensors")
    assert _same_state(saved, snapshots.states[0])


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
