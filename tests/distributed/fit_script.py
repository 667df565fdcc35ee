"""An ordinary training script, run as it is by one process or by `torchrun --nproc_per_node=2`.

Each process writes what it ended with to OUT/result-rank{rank}.pt; checkpoints, CSV logs and the
final model are named after the rank, so the test sees which processes wrote files.

    python -m tests.distributed.fit_script OUT
"""

import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import lamina
from lamina import callbacks, layers


def make_model(synchronized: bool):
    model = lamina.Sequential([
        layers.Input((12, 2)),
        layers.Conv1D(4, 3, padding="same", use_bias=False),  # a bias before BN gets only rounding
        # noise as gradient, which Adam turns into full steps: runs would differ by that noise
        layers.BatchNormalization(synchronized=synchronized),
        layers.Activation("relu"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=lamina.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(out: str) -> None:
    torch.set_num_threads(1)
    rank = lamina.distributed.rank()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((52, 12, 2)).astype("float32")
    y = rng.integers(0, 3, 52)
    result = {}

    # Global batches of 7 split 4 + 3 (the last, of 3 samples, 2 + 1), shuffled each epoch.
    lamina.utils.set_random_seed(0)
    model = make_model(synchronized=True)
    history = model.fit(
        x, y, batch_size=7, epochs=2, validation_split=0.25, verbose=0,
        callbacks=[callbacks.ModelCheckpoint(f"{out}/ckpt-rank{rank}-{{epoch}}.lamina"),
                   callbacks.CSVLogger(f"{out}/log-rank{rank}.csv"),
                   callbacks.BackupAndRestore(f"{out}/backup", delete_checkpoint=False)])
    model.save(f"{out}/final-rank{rank}.lamina")
    result["arrays"] = {"weights": model.get_weights(), "history": history.history,
                        "evaluate": model.evaluate(x, y, verbose=0, return_dict=True)}

    # A DataLoader: re-batched through a DistributedSampler, 8 = 4 per process.
    lamina.utils.set_random_seed(0)
    model = make_model(synchronized=True)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=8)
    history = model.fit(loader, epochs=1, verbose=0)
    result["loader"] = {"weights": model.get_weights(), "history": history.history}

    # Per-process BatchNormalization: each part normalized on its own, moving statistics averaged.
    lamina.utils.set_random_seed(0)
    model = make_model(synchronized=False)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    result["per_rank_bn"] = {"weights": model.get_weights(), "history": history.history}

    # Two outputs, one without a loss: the weights only it uses get no gradient.
    lamina.utils.set_random_seed(0)
    inp = layers.Input((12, 2))
    features = layers.GlobalAveragePooling1D()(inp)
    scored = layers.Dense(3, activation="softmax", name="scored")(features)
    watched = layers.Dense(2, name="watched")(features)
    model = lamina.Model(inp, [scored, watched])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", None])
    history = model.fit(x, [y, np.zeros((52, 2), "float32")], batch_size=8, epochs=1, verbose=0)
    result["unused_output"] = {"weights": model.get_weights(), "history": history.history}

    torch.save(result, f"{out}/result-rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
