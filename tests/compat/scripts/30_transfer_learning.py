"""Transfer learning as in Keras' guide: a frozen base model (with BatchNormalization) called with
training=False inside a new model, then fine-tuning after unfreezing and recompiling; whether the
moving statistics move is recorded, not assumed. Categorical cross-entropy on soft
(label-smoothed) targets, which the target check must accept."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(30)
x = rng.normal(size=(40, 6)).astype("float32")
classes = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
soft = keras.utils.to_categorical(classes, 3) * 0.9 + 0.1 / 3

base = keras.Sequential([keras.Input((6,)), layers.Dense(8), layers.BatchNormalization(),
                         layers.Activation("relu")], name="base")
seeded_weights(base)
base.trainable = False
inputs = keras.Input((6,))
features = base(inputs, training=False)
outputs = layers.Dense(3, activation="softmax")(features)
model = keras.Model(inputs, outputs)
seeded_weights(model, seed=1)
base_before = [w.copy() for w in base.get_weights()]
batch_norm = base.layers[1]
moving_mean_before = ops.convert_to_numpy(batch_norm.moving_mean).copy()

model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.CategoricalCrossentropy(),
              metrics=[keras.metrics.CategoricalAccuracy()])
frozen_counts = [len(model.trainable_weights), len(model.non_trainable_weights)]
frozen = model.fit(x, soft, batch_size=10, epochs=2, shuffle=False, verbose=0)
base_unchanged = all(np.array_equal(a, b) for a, b in zip(base_before, base.get_weights()))

base.trainable = True
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy",
              metrics=[keras.metrics.CategoricalAccuracy()])
tuned = model.fit(x, soft, batch_size=10, epochs=2, shuffle=False, verbose=0)

save_results({
    "frozen_counts": frozen_counts,
    "tuned_counts": [len(model.trainable_weights), len(model.non_trainable_weights)],
    "frozen_loss": frozen.history["loss"],
    "base_unchanged": base_unchanged,
    "tuned_loss": tuned.history["loss"],
    # Keras 3 (torch backend) moves them although the base was called with training=False.
    "moving_stats_unchanged": bool(np.array_equal(moving_mean_before,
                                                  ops.convert_to_numpy(batch_norm.moving_mean))),
    "predict": model.predict(x[:4], verbose=0),
})
