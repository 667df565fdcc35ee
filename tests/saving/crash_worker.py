"""The training run of the crash test: run as a script it trains with BackupAndRestore and
ModelCheckpoint, resuming from whatever backup it finds; imported, it gives the same run."""

from __future__ import annotations

import sys

import numpy as np
import torch

import lamina
from lamina import layers

EPOCHS = 6


def data():
    g = np.random.default_rng(0)
    x = g.normal(size=(48, 5)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64")


def build():
    torch.set_num_threads(1)
    lamina.utils.clear_session()
    lamina.utils.set_random_seed(42)
    model = lamina.Sequential([layers.Input((5,)), layers.Dense(16, activation="relu"),
                               layers.Dropout(0.3), layers.BatchNormalization(),
                               layers.Dense(2, activation="softmax")])
    model.compile(lamina.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(folder=None, announce=False):
    """The run: seed, build, compile, fit. With a folder, backed up at every step; `announce`
    prints "ready" once training (after any restore) begins, for the killer to time from."""
    model = build()
    callbacks = []
    if folder is not None:
        callbacks = [lamina.callbacks.BackupAndRestore(f"{folder}/backup", save_freq=1,
                                                       delete_checkpoint=False),
                     lamina.callbacks.ModelCheckpoint(f"{folder}/last.lamina")]
    if announce:
        callbacks.append(lamina.callbacks.LambdaCallback(
            on_train_begin=lambda logs: print("ready", flush=True)))
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    return model


if __name__ == "__main__":
    folder = sys.argv[1]
    train(folder, announce=True).save_weights(f"{folder}/final.safetensors")
