"""Confusion-matrix metrics with class_weight: compiled `metrics` stay unweighted, only
`weighted_metrics` see the class weights (Keras' rule)."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights


def counts():
    return [keras.metrics.TruePositives(name="tp"), keras.metrics.FalsePositives(name="fp"),
            keras.metrics.TrueNegatives(name="tn"), keras.metrics.FalseNegatives(name="fn"),
            keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
            keras.metrics.BinaryAccuracy(name="acc")]


rng = np.random.default_rng(12)
x = rng.normal(size=(80, 3)).astype("float32")
y = (x[:, 0] + 0.3 * x[:, 1] > 0.9).astype("float32")[:, None]     # about one positive in five

model = seeded_weights(keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"),
                                         layers.Dense(1, activation="sigmoid")]))
model.compile(optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy", metrics=counts(),
              weighted_metrics=[keras.metrics.Precision(name="weighted_precision"),
                                keras.metrics.BinaryAccuracy(name="weighted_acc")])
history = model.fit(x, y, batch_size=20, epochs=3, shuffle=False, verbose=0,
                    class_weight={0: 1.0, 1: 4.0})
# No validation_data here: Keras' torch backend returns the count metrics' variables themselves as
# training logs, so a validation pass afterwards overwrites the training counts it reports.
trained = {name: [float(v) for v in values] for name, values in history.history.items()}
sample_weight = np.where(y[:, 0] > 0, 3.0, 1.0)
evaluated = model.evaluate(x, y, sample_weight=sample_weight, verbose=0, return_dict=True)

standalone = {}
for metric in counts():
    metric.update_state(y[:20], model.predict(x[:20], verbose=0))
    standalone[metric.name] = float(metric.result())
thresholds = keras.metrics.TruePositives(thresholds=[0.3, 0.5, 0.7])
thresholds.update_state(y, model.predict(x, verbose=0))

save_results({
    "history": trained,
    "evaluate": evaluated,
    "standalone": standalone,
    "multi_threshold": thresholds.result(),
    "metrics_names": model.metrics_names,
})
