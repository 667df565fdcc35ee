"""Variables: add_weight without a name, .value / .assign in a layer, keras.Variable, and a Metric
subclass whose state lives in add_variable."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class RunningScale(layers.Layer):
    """Scales inputs by a trainable vector and counts the training batches it has seen."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")
        self.batches_seen = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x, training=False):
        if training:
            self.batches_seen.assign(self.batches_seen + 1.0)
        return x * self.scale.value


class MeanAbsoluteGap(keras.metrics.Metric):
    def __init__(self, name="mean_abs_gap", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        gap = ops.abs(ops.cast(y_true, "float32") - y_pred)
        self.total.assign_add(ops.sum(gap))
        self.count.assign_add(ops.cast(ops.size(gap), "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


rng = np.random.default_rng(5)
x = rng.normal(size=(48, 4)).astype("float32")
y = (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None]

scaler = RunningScale()
model = keras.Sequential([keras.Input((4,)), scaler, layers.Dense(1)])
seeded_weights(model)
scaler.batches_seen.assign(0.0)
model.compile(optimizer="sgd", loss="mse", metrics=[MeanAbsoluteGap()])
history = model.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)

standalone = keras.Variable(np.arange(3, dtype="float32"), trainable=False)
standalone.assign(standalone * 2.0)
standalone.assign_add(ops.ones((3,)))
metric = MeanAbsoluteGap()
metric.update_state(np.array([1.0, 2.0]), np.array([1.5, 1.0], "float32"))
first = float(metric.result())
metric.reset_state()

save_results({
    "loss": history.history["loss"],
    "mean_abs_gap": history.history["mean_abs_gap"],
    "batches_seen": float(ops.convert_to_numpy(scaler.batches_seen.value)),
    "scale": ops.convert_to_numpy(scaler.scale.value),
    "scale_is_trainable": [w.trainable for w in scaler.weights],
    "standalone": ops.convert_to_numpy(standalone.value),
    "standalone_shape": list(standalone.shape),
    "metric_first": first,
    "metric_after_reset": float(metric.result()),
    "metric_variables": len(metric.variables),
    "weight_names_unique": len({w.path for w in model.weights}) == len(model.weights),
})
