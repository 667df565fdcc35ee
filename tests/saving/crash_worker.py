"""The training run of the kill-and-resume test: BackupAndRestore (listed first, the order that
once lost files), a save_best_only ModelCheckpoint and an epoch-templated one, resuming from
whatever backup it finds. `run` is the body of a killed process; `train()` without a folder is
the uninterrupted reference."""

from __future__ import annotations

import os
import signal

import numpy as np
import torch

import lamina
from lamina import layers

EPOCHS = 8


def data():
    g = np.random.default_rng(0)
    x = g.normal(size=(64, 5)).astype("float32")
    return x, (x[:, 0] + x[:, 1] + g.normal(scale=0.7, size=64) > 0).astype("int64")


def build():
    torch.set_num_threads(1)
    lamina.config.set_device("cpu")
    lamina.utils.clear_session()
    lamina.utils.set_random_seed(42)
    model = lamina.Sequential([layers.Input((5,)), layers.Dense(16, activation="relu"),
                               layers.Dropout(0.3), layers.BatchNormalization(),
                               layers.Dense(2, activation="softmax")])
    model.compile(lamina.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(folder=None, started=None):
    """The run: seed, build, compile, fit; `started` (an Event) is set once training (after any
    restore) begins. Returns the model and its History."""
    model = build()
    callbacks = []
    if folder is not None:
        callbacks = [lamina.callbacks.BackupAndRestore(f"{folder}/backup", save_freq=2,
                                                       double_checkpoint=True,
                                                       delete_checkpoint=False),
                     lamina.callbacks.ModelCheckpoint(f"{folder}/best.lamina", save_best_only=True),
                     lamina.callbacks.ModelCheckpoint(f"{folder}/ep{{epoch:02d}}.lamina")]
    if started is not None:
        callbacks.append(lamina.callbacks.LambdaCallback(on_train_begin=lambda logs: started.set()))
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=EPOCHS, validation_split=0.25,
                        callbacks=callbacks, verbose=0)
    return model, history


def kill_at_rename(when, n):
    """SIGKILL this process at the `n`-th rename of the run, `when` "before" it (an atomic
    write's temporary file is complete but not yet in place, or the backup not yet moved to
    .bkp) or "after" it (one file of an epoch written, the next not)."""
    real, count = os.replace, 0

    def replace(src, dst):
        nonlocal count
        count += 1
        if count == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
        if count == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def run(folder, plan, started):
    """A process's body: `plan` is None, ("time", seconds) (the parent kills it) or
    (when, n) for `kill_at_rename`; training ends by writing `done`."""
    if plan is not None and plan[0] != "time":
        kill_at_rename(*plan)
    train(folder, started)
    open(os.path.join(folder, "done"), "w").close()
