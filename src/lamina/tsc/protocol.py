"""The training protocol of the papers, and one training run under it.

FCN / ResNet (Fawaz et al. 2019): Adam(1e-3); ReduceLROnPlateau on the training loss (factor 0.5,
patience 50, min_lr 1e-4); batch int(min(n_train / 10, 16)) (ResNet: cap 64); 2000 / 1500 epochs.
MLP: Adadelta(1.0); ReduceLROnPlateau(factor 0.5, patience 200, min_lr 0.1); 5000 epochs.
LSTM-FCN (Karim et al. 2017): Adam(1e-3); ReduceLROnPlateau(factor 1/cbrt(2), patience 100,
min_lr 1e-4); batch 128; 2000 epochs. InceptionTime, H-InceptionTime, LITE and LITETime
(Ismail Fawaz et al. 2020, Ismail-Fawaz et al. 2022, 2023): Adam(1e-3); ReduceLROnPlateau(factor
0.5, patience 50, min_lr 1e-4); batch 64; 1500 epochs; an ensemble trains each member in turn
under that protocol. In every case the weights with the lowest training loss are the ones
evaluated on the test set (an ensemble's: each member's own).
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from dataclasses import dataclass

from lamina import callbacks, optimizers
from lamina.models import Ensemble
from lamina.tsc.models import MODELS
from lamina.utils import set_random_seed


@dataclass(frozen=True)
class Protocol:
    optimizer: str
    learning_rate: float
    reduce_factor: float
    reduce_patience: int
    min_lr: float
    batch_cap: int
    epochs: int
    fixed_batch: int | None = None

    def batch_size(self, n_train: int) -> int:
        if self.fixed_batch is not None:
            return min(self.fixed_batch, n_train)
        return max(1, int(min(n_train / 10, self.batch_cap)))

    def make_optimizer(self):
        if self.optimizer == "adadelta":
            return optimizers.Adadelta(self.learning_rate, rho=0.95, epsilon=1e-8)
        return optimizers.Adam(self.learning_rate)


PROTOCOLS = {
    "fcn": Protocol("adam", 1e-3, 0.5, 50, 1e-4, 16, 2000),
    "resnet": Protocol("adam", 1e-3, 0.5, 50, 1e-4, 64, 1500),
    "mlp": Protocol("adadelta", 1.0, 0.5, 200, 0.1, 16, 5000),
    "lstm_fcn": Protocol("adam", 1e-3, 1 / math.cbrt(2), 100, 1e-4, 16, 2000, fixed_batch=128),
    **dict.fromkeys(("inception", "inceptiontime", "h-inception", "h-inceptiontime", "lite", "litetime"),
                    Protocol("adam", 1e-3, 0.5, 50, 1e-4, 64, 1500, fixed_batch=64)),
}


class KeepLowestTrainingLoss(callbacks.Callback):
    """Remembers the weights at the epoch of lowest training loss and restores them at the end.
    `kept` lists (epoch, loss) of every training it saw: one per member of an ensemble."""

    def __init__(self):
        super().__init__()
        self.kept = []

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.state = math.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        if logs["loss"] < self.best:
            self.best, self.best_epoch = logs["loss"], epoch
            self.state = copy.deepcopy(self.model.state_dict())

    def on_train_end(self, logs=None):
        if self.state is not None:
            self.model.load_state_dict(self.state)
        self.kept.append((self.best_epoch, self.best))


def build_model(model_name, data, norm="bn", seed=0):
    """The seeded, compiled model for a UCRDataset, before training."""
    if model_name not in MODELS:
        raise ValueError(f"Unknown model {model_name!r}. Choose one of {sorted(MODELS)}.")
    protocol = PROTOCOLS[model_name]
    set_random_seed(seed)
    build = MODELS[model_name]
    kwargs = {} if norm is None else {"norm": norm}
    if not data.equal_length and "masked" in inspect.signature(build).parameters:
        kwargs["masked"] = True
    model = build(data.x_train.shape[1:], data.num_classes, **kwargs)
    model.compile(optimizer=protocol.make_optimizer(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train_and_evaluate(model_name, data, epochs=None, seed=0, norm="bn", verbose=1, extra_callbacks=(),
                       model=None):
    """One run of `model_name` on a UCRDataset under the paper's protocol.

    `model`, if given, is the result of `build_model(model_name, data, norm, seed)`.
    Returns (model, history, result) where result holds the test accuracy and loss of the weights
    with the lowest training loss, the epoch they come from (for an ensemble, a list: each
    member's) and the mean of their training losses, and the wall time.
    """
    if model is None:
        model = build_model(model_name, data, norm, seed)
    protocol = PROTOCOLS[model_name]
    keep = KeepLowestTrainingLoss()
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=protocol.reduce_factor,
                                         patience=protocol.reduce_patience, min_lr=protocol.min_lr)
    start = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, batch_size=protocol.batch_size(len(data.x_train)),
                        epochs=epochs or protocol.epochs, verbose=verbose,
                        callbacks=[reduce, keep, *extra_callbacks])
    seconds = time.perf_counter() - start
    test = model.evaluate(data.x_test, data.y_test, return_dict=True, verbose=0, batch_size=256)
    best_epochs = [epoch for epoch, _ in keep.kept]
    result = {"model": model_name, "dataset": data.name, "norm": norm, "seed": seed,
              "epochs": epochs or protocol.epochs,
              "best_epoch": best_epochs if isinstance(model, Ensemble) else best_epochs[0],
              "train_loss": sum(loss for _, loss in keep.kept) / len(keep.kept),
              "test_accuracy": test["accuracy"], "test_loss": test["loss"], "seconds": seconds}
    return model, history, result
