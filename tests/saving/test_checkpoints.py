"""ModelCheckpoint and BackupAndRestore: files named as asked, the best kept, and interrupted
runs — by an exception, or by SIGKILL at random moments, mid-write included — resuming to final
weights bitwise equal to those of an uninterrupted run."""

from __future__ import annotations

import copy
import json
import multiprocessing
import multiprocessing.forkserver
import os
import random
import re
import signal
import time
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

import lamina
from lamina import layers
from lamina.callbacks import BackupAndRestore, Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
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
    "callback tensors missing": {"progress": _set("callbacks", [["EarlyStopping",
                                                                 {"best_weights": ["kernel"]}]])},
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


def test_early_stopping_and_reduce_lr_resume_as_if_never_interrupted(tmp_path):
    """Their counters, best values and best weights are in the backup: the resumed run lowers
    the rate, stops and restores the best weights at the epochs an uninterrupted run does."""
    x, y = crash_worker.data()

    def fit(*extra):
        model = crash_worker.build()
        history = model.fit(x, y, batch_size=8, epochs=crash_worker.EPOCHS, validation_split=0.25,
                            verbose=0, callbacks=[
                                BackupAndRestore(tmp_path / "backup"),
                                EarlyStopping(patience=3, restore_best_weights=True),
                                ReduceLROnPlateau(patience=1, factor=0.5), *extra])
        return model, history.history

    reference, expected = fit()
    stop = len(expected["loss"])
    assert stop < crash_worker.EPOCHS and len(set(expected["learning_rate"][:3])) == 1
    assert len(set(expected["learning_rate"])) > 1 and np.argmin(expected["val_loss"]) < 3
    with pytest.raises(KeyboardInterrupt):
        fit(_Interrupt(3, 0))
    resumed, history = fit()
    assert history == {k: v[3:] for k, v in expected.items()}
    assert _same_state(resumed.state_dict(), reference.state_dict())


def _val_loss(path, x_val, y_val):
    return lamina.load_model(path).evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]


def _trial(folder, chooser, context, duration, kills):
    """One training run to its end through `kills` SIGKILLs, each at a random moment of the
    process or at a random rename (just before or after it); after each, every file there
    loads. Returns how many kills left a temporary file behind."""
    plans = [("time", chooser.uniform(0.0, duration)) if chooser.random() < 0.4 else
             (chooser.choice(["before", "after"]), chooser.randint(1, 60)) for _ in range(kills)]
    mid_write = 0
    for plan in [*plans, None]:
        started = context.Event()
        process = context.Process(target=crash_worker.run, args=(str(folder), plan, started))
        process.start()
        if plan is not None and plan[0] == "time":
            while not started.wait(0.05) and process.is_alive():
                pass
            time.sleep(plan[1])
            process.kill()
        process.join(300)
        if (folder / "done").exists():
            break
        assert process.exitcode == -signal.SIGKILL, f"the worker failed (exit {process.exitcode})"
        names = [name for _, _, files in os.walk(folder) for name in files]
        mid_write += any(name.endswith(".tmp") for name in names)
        model = crash_worker.build()
        model.optimizer.build(model.parameters())
        backups = [folder / "backup" / n for n in ("backup.lamina", "backup.lamina.bkp")]
        assert any(p.exists() for p in backups) or not (folder / "ep01.lamina").exists()
        for path in backups:
            if path.exists():  # whole: atomic writes leave the old file or the new one
                assert 0 <= checkpoint.load_checkpoint(model, path).epoch <= crash_worker.EPOCHS
        for name in os.listdir(folder):
            if name.endswith(".lamina"):
                lamina.load_model(folder / name)
    assert (folder / "done").exists(), "the last run did not finish"
    return mid_write


def test_kills_and_resumes_keep_the_best_and_every_epoch_file(tmp_path):
    """Training processes SIGKILLed at random moments, and just before or after a random
    rename (inside an atomic write, or between the files of one epoch), resumed until done: the
    best file is the model of the epoch with the lowest val_loss (every epoch's file evaluated
    again), no epoch's file is missing, no temporary file is left, and the final weights are an
    uninterrupted run's. LAMINA_LONG_TESTS=1 runs 30 trials of up to 6 kills (about 3 minutes);
    CI runs 2 of 3."""
    long = os.environ.get("LAMINA_LONG_TESTS") == "1"
    trials, most_kills = (30, 6) if long else (2, 3)
    began = time.perf_counter()
    context = multiprocessing.get_context("forkserver")  # forks of a clean, warmed-up server
    context.set_forkserver_preload(["tests.saving.crash_server"])
    multiprocessing.forkserver.ensure_running()  # it warms up while the reference runs
    reference, history = crash_worker.train()
    timed = time.perf_counter()
    (tmp_path / "timed").mkdir()
    crash_worker.run(tmp_path / "timed", None, None)
    duration = time.perf_counter() - timed
    x, y = crash_worker.data()
    x_val, y_val = x[48:], y[48:]  # validation_split=0.25 holds out the last quarter
    chooser = random.Random(int(os.environ.get("LAMINA_KILL_SEED", "1234")))
    kills = mid_write = 0
    for trial in range(trials):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        n = chooser.randint(1, most_kills)
        mid_write += _trial(folder, chooser, context, duration, n)
        kills += n
        epochs = [folder / f"ep{e:02d}.lamina" for e in range(1, crash_worker.EPOCHS + 1)]
        assert all(p.exists() for p in epochs), sorted(os.listdir(folder))
        assert not [name for _, _, files in os.walk(folder) for name in files if ".tmp" in name]
        losses = [_val_loss(p, x_val, y_val) for p in epochs]
        np.testing.assert_allclose(losses, history.history["val_loss"], rtol=1e-6)
        best = int(np.argmin(losses))
        assert _val_loss(folder / "best.lamina", x_val, y_val) == losses[best], (trial, losses)
        assert _same_state(lamina.load_model(folder / "best.lamina").state_dict(),
                           lamina.load_model(epochs[best]).state_dict())
        assert _same_state(lamina.load_model(epochs[-1]).state_dict(), reference.state_dict())
    if long:
        print(f"\n{trials} trials, {kills} kills ({mid_write} left a temporary file) in "
              f"{time.perf_counter() - began:.0f} s")
