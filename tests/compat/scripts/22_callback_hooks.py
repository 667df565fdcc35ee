"""Which callback hooks fit (with validation), evaluate and predict call, and in what order."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, name, logs):
        self.calls.append([name, sorted(logs) if logs else []])


for hook in ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
             "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
             "on_predict_batch_begin", "on_predict_batch_end"]:
    def make(hook_name):
        if "batch" in hook_name or "epoch" in hook_name:
            return lambda self, step, logs=None: self._record(f"{hook_name}:{step}", logs)
        return lambda self, logs=None: self._record(hook_name, logs)
    setattr(Recorder, hook, make(hook))


class LossLogger(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.seen = getattr(self.model, "seen", []) + [round(logs["val_loss"], 5)]


rng = np.random.default_rng(22)
x = rng.normal(size=(12, 3)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = seeded_weights(keras.Sequential([keras.Input((3,)), layers.Dense(1)]))
model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
fit_recorder, eval_recorder, predict_recorder = Recorder(), Recorder(), Recorder()
model.fit(x, y, batch_size=6, epochs=2, validation_data=(x[:4], y[:4]), shuffle=False, verbose=0,
          callbacks=[fit_recorder, LossLogger()])
model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[eval_recorder])
model.predict(x, batch_size=5, verbose=0, callbacks=[predict_recorder])

save_results({
    "fit": fit_recorder.calls,
    "evaluate": eval_recorder.calls,
    "predict": predict_recorder.calls,
    "val_losses": model.seen,
    "callback_sees_model": fit_recorder.model is model,
})
