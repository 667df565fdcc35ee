"""metrics_names, a stateful Metric subclass (add_variable), MeanAbsolutePercentageError as loss
and metric, string metric aliases, evaluate's list and dict forms."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class BinaryTruePositives(keras.metrics.Metric):
    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true > 0.5, "bool")
        y_pred = ops.cast(y_pred > 0.5, "bool")
        values = ops.cast(ops.logical_and(y_true, y_pred), self.dtype)
        if sample_weight is not None:
            values = values * ops.cast(sample_weight, self.dtype)
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)


rng = np.random.default_rng(17)
x = rng.uniform(1, 2, size=(40, 3)).astype("float32")
y = (x.sum(axis=1, keepdims=True) / 3).astype("float32")
model = seeded_weights(keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"),
                                         layers.Dense(1)]))
names_before = model.metrics_names
model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.MeanAbsolutePercentageError(),
              metrics=["mae", "mse", keras.metrics.MeanAbsolutePercentageError(name="mape"),
                       BinaryTruePositives(), keras.metrics.RootMeanSquaredError(name="rmse")])
history = model.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
# Copied now: Keras' torch backend logs a metric whose result() is its variable by reference, so
# a later evaluate would rewrite the last epoch's value.
trained = {name: [float(v) for v in values] for name, values in history.history.items()}
as_list = model.evaluate(x, y, verbose=0)

mape = keras.metrics.MeanAbsolutePercentageError()
mape.update_state(np.array([[1.0], [2.0]]), np.array([[1.5], [1.0]], "float32"))
save_results({
    "names_before_compile": names_before,
    "metrics_names": model.metrics_names,
    "history": trained,
    "evaluate_list": as_list,
    "evaluate_dict": model.evaluate(x, y, verbose=0, return_dict=True),
    "mape_standalone": float(mape.result()),
    "mape_loss_fn": float(ops.convert_to_numpy(keras.losses.mean_absolute_percentage_error(
        np.array([4.0, 5.0]), np.array([3.0, 5.5], "float32")))),
})
