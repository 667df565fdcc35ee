"""Imbalanced binary classification in the style of Keras' fraud example: class weights from the
class counts, a Dense-Dropout stack, and the confusion-matrix metrics as compiled metrics.

Dropout makes training stochastic, so the curves are compared within a band; the counts must add
up to the number of samples seen (exact)."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(27)
features = rng.normal(size=(400, 6)).astype("float32")
targets = (features[:, 0] + 0.5 * features[:, 1] > 1.6).astype("int32")
counts = np.bincount(targets)
weight_for_0, weight_for_1 = 1.0 / counts[0], 1.0 / counts[1]

model = keras.Sequential([
    keras.Input(shape=features.shape[1:]),
    layers.Dense(16, activation="relu"),
    layers.Dropout(0.3),
    layers.Dense(16, activation="relu"),
    layers.Dropout(0.3),
    layers.Dense(1, activation="sigmoid"),
])
seeded_weights(model)
metrics = [keras.metrics.FalseNegatives(name="fn"), keras.metrics.FalsePositives(name="fp"),
           keras.metrics.TrueNegatives(name="tn"), keras.metrics.TruePositives(name="tp"),
           keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")]
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)
history = model.fit(features, targets, batch_size=64, epochs=6, verbose=0,
                    class_weight={0: weight_for_0, 1: weight_for_1})
trained = {name: [float(v) for v in values] for name, values in history.history.items()}
final = model.evaluate(features, targets, verbose=0, return_dict=True)

save_results({
    "positives": int(counts[1]),
    "counts_add_up": [sum(trained[k][-1] for k in ("fn", "fp", "tn", "tp")) == 400,
                      sum(final[k] for k in ("fn", "fp", "tn", "tp")) == 400],
    "loss": trained["loss"],
    "final_recall": final["recall"],
})
