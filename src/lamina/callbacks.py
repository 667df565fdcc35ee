"""Callbacks with Keras' names: hooks into fit/evaluate/predict."""

from __future__ import annotations

import copy
import csv
import math
import os
import warnings

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ReduceLROnPlateau",
           "LearningRateScheduler", "TerminateOnNaN", "CSVLogger", "LambdaCallback"]


class Callback:
    """Base class: override the hooks you need. `self.model` is set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls a hook on every callback. Batch hooks run only where some callback overrides them."""

    def __init__(self, callbacks, model, params):
        # A backup is the state after every other callback has seen an event, so BackupAndRestore
        # runs last: the files others write at an epoch's end are on disk before the backup that
        # counts the epoch as done, and their state is restored after their on_train_begin.
        self.callbacks = sorted(callbacks, key=lambda cb: isinstance(cb, BackupAndRestore))
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
            if isinstance(cb, BackupAndRestore):
                cb.peers = [other for other in self.callbacks if other is not cb]
        self._batch_users = {
            hook: [cb for cb in self.callbacks if _overrides(cb, hook)]
            for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                         "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")
        }

    def wants(self, hook) -> bool:
        return bool(self._batch_users.get(hook))

    def __getattr__(self, hook):
        users = self._batch_users.get(hook, self.callbacks) if hook.startswith("on_") else None
        if users is None:
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in users:
                getattr(cb, hook)(*args, **kwargs)

        return call


def _overrides(cb, hook) -> bool:
    fn = getattr(cb, hook)
    return getattr(fn, "__func__", fn) is not getattr(Callback, hook)


class History(Callback):
    """Records the logs of every epoch: `history.history["loss"]` is the list of epoch losses."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _monitor_op(mode, monitor, name):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{name}: `mode` must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
    if mode == "auto":
        mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall")) else "min"
    return np.less if mode == "min" else np.greater


class EarlyStopping(Callback):
    """Stops training when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(mode, monitor, "EarlyStopping")
        self.min_delta = abs(min_delta) if self.monitor_op is np.greater else -abs(min_delta)

    # What BackupAndRestore keeps: a resumed run stops where an uninterrupted one would.
    backup_attributes = ("wait", "stopped_epoch", "best_epoch", "best", "best_weights")

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"EarlyStopping: monitor '{self.monitor}' is not in the logs "
                f"({sorted(logs or {})}); nothing is checked.", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self.monitor_op(current - self.min_delta, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.state_dict())
            if self.baseline is None or self.monitor_op(current - self.min_delta, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when `monitor` stalls for `patience` epochs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: `factor` must be < 1. Received: factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.monitor_op = _monitor_op(mode, monitor, "ReduceLROnPlateau")

    # What BackupAndRestore keeps (the learning rate is in the optimizer's state).
    backup_attributes = ("wait", "cooldown_counter", "best")

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.monitor_op is np.less else -math.inf

    def _improved(self, current):
        if self.monitor_op is np.less:
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.optimizer.learning_rate
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau: monitor '{self.monitor}' is not in the logs "
                f"({sorted(logs)}); the learning rate is left alone.", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start to `schedule(epoch, lr)`."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, self.model.optimizer.learning_rate)
        if not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(
                f"LearningRateScheduler: the schedule must return a float. Received: {lr!r}"
            )
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self.writer, self.keys, self._header_done = None, None, bool(exists)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch", *self.keys],
                                         delimiter=self.sep)
            if not self._header_done:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class LambdaCallback(Callback):
    """A callback from plain functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
              "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        unknown = set(hooks) - set(self._HOOKS)
        if unknown:
            raise ValueError(
                f"LambdaCallback: unknown hooks {sorted(unknown)}. Valid: {list(self._HOOKS)}"
            )
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) during training, as `keras.callbacks.ModelCheckpoint`.

    Args:
        filepath: where to save; may hold `{epoch}` (1-based), `{batch}` and any log key, e.g.
            "ckpt-{epoch:02d}-{val_loss:.3f}.keras". The suffix picks the format, as
            `model.save` / `model.save_weights` do: ".keras" (a Keras 3 archive) or ".lamina"
            (lamina's own, with the optimizer state) for the whole model; with
            save_weights_only=True, ".weights.h5" (Keras' weights file) or ".safetensors".
        monitor: the log value that save_best_only compares ("val_loss", "val_accuracy", ...).
        verbose: 1 prints a line at each save.
        save_best_only: save only when `monitor` improves on the best value so far.
        save_weights_only: save only the weights.
        mode: "min", "max", or "auto" (max for accuracy-like names, else min).
        save_freq: "epoch", or an int: save every that many batches.
        initial_value_threshold: with save_best_only, a value `monitor` must beat first.

    Every file is written atomically, so a crash mid-save leaves the previous file intact.
    With BackupAndRestore in the same fit, the best value so far is part of the backup, so a
    resumed run never replaces the best file with a worse model.

    Example:
        >>> model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[
        ...     ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True)])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        suffixes = (".weights.h5", ".safetensors") if save_weights_only else (".keras", ".lamina")
        if not self.filepath.endswith(suffixes):
            raise ValueError(
                f"ModelCheckpoint: with save_weights_only={save_weights_only}, `filepath` must end "
                f"in {' or '.join(suffixes)}. Received: filepath={self.filepath!r}"
            )
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(
                f"ModelCheckpoint: `save_freq` must be 'epoch' or a positive int. Received: "
                f"save_freq={save_freq!r}"
            )
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq = save_freq
        self.monitor_op = _monitor_op(mode, monitor, "ModelCheckpoint")
        worst = math.inf if self.monitor_op is np.less else -math.inf
        self.best = worst if initial_value_threshold is None else initial_value_threshold
        self._batches_since_save = 0
        self._current_epoch = 0

    # What BackupAndRestore keeps, so that a resumed run does not replace the best file with a
    # worse one.
    backup_attributes = ("best", "_batches_since_save")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = dict(logs or {})
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"ModelCheckpoint: monitor '{self.monitor}' is not in the logs "
                    f"({sorted(logs)}); nothing is saved. Use e.g. monitor='loss', or pass "
                    "validation data for 'val_*' values.", stacklevel=2)
                return
            if not self.monitor_op(current, self.best):
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)

    def _path(self, epoch, batch, logs):
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} ({e!r}); it may use "
                f"{{epoch}}, {{batch}} and the log keys {sorted(logs)}."
            ) from e


class BackupAndRestore(Callback):
    """Backs up the whole training state so that an interrupted `fit` resumes where it stopped,
    as `keras.callbacks.BackupAndRestore` — and, unlike Keras, bitwise: a resumed run ends with
    exactly the weights an uninterrupted run with the same seed reaches.

    The backup holds the weights, the optimizer state, the epoch and step reached, the random
    generators' states, the epoch's metrics and the state of the other callbacks that keep one
    (the attributes named in their `backup_attributes`, numbers or dicts of tensors:
    ModelCheckpoint's best value, EarlyStopping's and ReduceLROnPlateau's counters and best
    values, EarlyStopping's best weights); it is written atomically (a crash mid-write leaves the
    previous backup). Calling `fit` again with the same `backup_dir` restores it and continues
    at that epoch and step (a resumed epoch re-draws the same shuffle and skips the batches
    already trained on). Loading is all or nothing: a backup that cannot be read changes
    nothing, and the previous backup (double_checkpoint=True) is tried next, with a warning.

    This callback runs after all the others at every event, wherever it is in the list: the
    files they write at an epoch's end are on disk before the backup that counts it as done.

    Args:
        backup_dir: folder for the backup, used by this callback only.
        save_freq: "epoch" (at every epoch end), or an int N: also every N batches.
        double_checkpoint: keep the previous backup too, as a fallback if the latest one cannot
            be read.
        delete_checkpoint: delete the backup when training ends normally.

    Example:
        >>> model.fit(x, y, epochs=100, callbacks=[BackupAndRestore("/tmp/backup")])
    """

    FILENAME = "backup.lamina"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"BackupAndRestore: `backup_dir` must be a folder path. Received: "
                             f"backup_dir={backup_dir!r}")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(
                f"BackupAndRestore: `save_freq` must be 'epoch' or a positive int. Received: "
                f"save_freq={save_freq!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._path = os.path.join(self.backup_dir, self.FILENAME)
        self._previous_path = self._path + ".bkp"
        self._resume = None
        self._epoch_start_rng = None
        self._batches_since_save = 0
        self._epoch = 0
        self.peers = []  # the fit's other callbacks, set by CallbackList

    def on_train_begin(self, logs=None):
        from lamina.saving import archive, checkpoint

        self._resume = self._load()
        if self._resume is not None:
            # fit starts at this epoch and skips the steps already done in it; the epoch's
            # shuffle is drawn from the generators as they stood when the epoch began.
            self.model._resume_at = (self._resume.epoch, self._resume.step)
            checkpoint.apply_rng(self._resume.epoch_start_rng)
            self._restore_peers(self._resume.callback_states)
            if self._resume.step == 0:
                self._resume = None
        archive.remove_orphan_temps(self._path)  # of a run killed while writing its backup
        # Nothing draws random numbers between here (or an epoch's end) and the next epoch's
        # on_epoch_begin hooks, which a resumed run calls again.
        self._epoch_start_rng = checkpoint.capture_rng()

    def _load(self):
        """The Resume of the newest backup that can be read (a warning says when that is not
        the latest), None without a backup; a SavingError if none can be read."""
        from lamina.saving import SavingError, checkpoint

        failures = []
        for path in (self._path, self._previous_path):
            if not os.path.exists(path):
                continue
            try:
                resume = checkpoint.load_checkpoint(self.model, path)
            except SavingError as e:
                failures.append(f"{e}")
                continue
            if path != self._path:
                why = failures[0] if failures else f"'{self._path}' is missing"
                warnings.warn(f"BackupAndRestore: resuming from the previous backup '{path}', "
                              f"as the latest cannot be used ({why})", stacklevel=3)
            return resume
        if failures:
            raise SavingError(
                f"BackupAndRestore: no backup in '{self.backup_dir}' can be read. "
                + " ".join(failures)
                + " Delete the folder to start training afresh."
            )
        return None

    def _stateful_peers(self) -> list:
        return [cb for cb in self.peers if getattr(cb, "backup_attributes", ())]

    def _restore_peers(self, states) -> None:
        peers = self._stateful_peers()
        names = [type(cb).__name__ for cb in peers]
        if names != [name for name, _ in states]:
            warnings.warn(f"BackupAndRestore: the backup holds the state of callbacks "
                          f"{[name for name, _ in states]}, but this fit has {names}; their "
                          "state starts afresh.", stacklevel=3)
            return
        for cb, (_, state) in zip(peers, states):
            for name in cb.backup_attributes:
                if state.get(name) is not None:  # None: an infinite `best`, as a fresh one has
                    setattr(cb, name, state[name])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._resume is not None:
            self._resume.restore_batch_state(self.model)
            self._resume = None

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        last = self.params.get("steps") is not None and batch + 1 >= self.params["steps"]
        if self._batches_since_save >= self.save_freq and not last:  # the epoch end saves the last
            self._batches_since_save = 0
            self._save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        from lamina.saving import checkpoint

        self._epoch_start_rng = checkpoint.capture_rng()
        self._save(epoch + 1, 0)

    def _save(self, epoch, step):
        from lamina.distributed import is_main_process
        from lamina.saving import checkpoint

        if not is_main_process():  # data-parallel processes share one backup, written by rank 0
            return
        if self.double_checkpoint and os.path.exists(self._path):
            os.replace(self._path, self._previous_path)
        checkpoint.save_checkpoint(
            self.model, self._path, epoch, step, self._epoch_start_rng,
            [(type(cb).__name__, {name: getattr(cb, name) for name in cb.backup_attributes})
             for cb in self._stateful_peers()])

    def on_train_end(self, logs=None):
        from lamina.distributed import is_main_process

        if not self.delete_checkpoint or not is_main_process():
            return
        for path in (self._path, self._previous_path):
            if os.path.exists(path):
                os.remove(path)
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)


__all__ += ["ModelCheckpoint", "BackupAndRestore"]


class TensorBoard(Callback):
    """Writes the logs as TensorBoard event files, under Keras 3's names and folders.

    `log_dir/train` receives `epoch_<name>` for every training log (and `epoch_learning_rate`)
    at step = epoch, `log_dir/validation` the `val_` logs without the prefix; with `update_freq`
    "batch" or N, `batch_<name>` every N training batches (step = global batch, from 1);
    `evaluation_<name>_vs_iterations` after each evaluation (step = optimizer iterations);
    `histogram_freq` N: a histogram of every weight every N epochs; `write_graph`: the model's
    summary as text. Needs the `tensorboard` package: `pip install "lamina[tensorboard]"`.

    Args:
        log_dir, histogram_freq, write_graph, write_images, write_steps_per_second, update_freq,
        profile_batch, embeddings_freq, embeddings_metadata: as Keras'. Images, profiling and
        embeddings are not written (a nonzero `profile_batch` is refused, as Keras' torch
        backend does).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoard needs the `tensorboard` package: pip install \"lamina[tensorboard]\" "
                "(or pip install tensorboard)."
            ) from e
        if update_freq != "epoch" and update_freq != "batch" and not (
                isinstance(update_freq, int) and update_freq > 0):
            raise ValueError("TensorBoard: `update_freq` must be 'epoch', 'batch' or a positive int. "
                             f"Received: update_freq={update_freq!r}")
        if profile_batch:
            raise ValueError("TensorBoard: profiling is not available with lamina (nor with Keras' "
                             f"torch backend). Received: profile_batch={profile_batch} (must be 0)")
        self._writer_class = SummaryWriter
        self.log_dir, self.histogram_freq, self.write_graph = str(log_dir), histogram_freq, write_graph
        self.write_images, self.write_steps_per_second = write_images, write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self.embeddings_freq, self.embeddings_metadata = embeddings_freq, embeddings_metadata
        self._writers = {}
        self._global_train_batch = 0
        self._graph_written = False

    def _writer(self, kind):
        """The event writer of log_dir/train or log_dir/validation, opened when first needed."""
        if kind not in self._writers:
            self._writers[kind] = self._writer_class(os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._graph_written = not self.write_graph

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1

    def on_train_batch_end(self, batch, logs=None):
        if not self._graph_written:  # the model is built by now
            lines = []
            self.model.summary(print_fn=lines.append)
            self._writer("train").add_text("keras", "\n".join(lines), global_step=0)
            self._graph_written = True
        if self.update_freq != "epoch" and self._global_train_batch % self.update_freq == 0:
            self._scalars("train", "batch_", logs, self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        if self.model.optimizer is not None:
            train.setdefault("learning_rate", self.model.optimizer.learning_rate)
        self._scalars("train", "epoch_", train, epoch)
        self._scalars("validation", "epoch_", {k[4:]: v for k, v in logs.items() if k.startswith("val_")},
                      epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for layer in self.model.layers:
                for name, weight in layer.named_parameters():
                    tag = f"{layer.name}/{name.replace('.', '/')}/histogram"
                    writer.add_histogram(tag, weight.detach().cpu(), global_step=epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and logs:
            self._scalars("validation", "evaluation_", {f"{k}_vs_iterations": v for k, v in logs.items()},
                          optimizer.iterations)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _scalars(self, kind, prefix, logs, step):
        if not logs:
            return
        writer = self._writer(kind)
        for name, value in logs.items():
            if np.ndim(_to_float_array(value)) == 0:  # per-threshold metrics have no scalar to plot
                writer.add_scalar(f"{prefix}{name}", float(_to_float_array(value)), global_step=int(step))


def _to_float_array(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)


__all__ += ["TensorBoard"]
