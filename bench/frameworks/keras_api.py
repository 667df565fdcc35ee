"""What Keras and lamina share: the same user code, trained with `fit` and timed per epoch."""

from __future__ import annotations

import time

from bench import workloads


def epoch_timer(callback_base):
    """A callback (subclass of `callback_base`) that records each epoch's wall time in `.seconds`.

    Only epoch hooks are overridden, so neither Keras nor lamina leaves its fast batch path.
    """

    class EpochTimer(callback_base):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # Reading the loss waits for the epoch's last step where steps run asynchronously (JAX).
            float(logs["loss"])
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


class FitRunner:
    """The workload written against Keras' API, for `api` = the `keras` or the `lamina` module."""

    def __init__(self, api, workload, weights, **compile_kwargs):
        self.api = api
        api.utils.set_random_seed(workloads.SEED)
        self.model = workloads.keras_style_model(api, workload)
        if weights is not None:
            self.model.set_weights(weights)
        self.model.compile(optimizer=api.optimizers.Adam(workloads.LEARNING_RATE),
                           loss="sparse_categorical_crossentropy", **compile_kwargs)

    def initial_loss(self, x, y) -> float:
        return float(self.model.evaluate(x, y, batch_size=256, verbose=0))

    def train(self, x, y, batch_size, epochs) -> list[float]:
        timer = epoch_timer(self.api.callbacks.Callback)
        self.model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
        return timer.seconds

    def predict_all(self, x, batch_size):
        return self.model.predict(x, batch_size=batch_size, verbose=0)
