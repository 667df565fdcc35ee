"""A tiny 3D CNN on synthetic volumes: Conv3D, MaxPool3D, BatchNormalization,
GlobalAveragePooling3D, binary output."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(25)
volumes = rng.normal(size=(16, 8, 8, 6, 1)).astype("float32")
labels = (volumes[:, 2:6, 2:6, 2:4].mean(axis=(1, 2, 3, 4)) > 0).astype("float32")

inputs = keras.Input((8, 8, 6, 1))
x = layers.Conv3D(filters=4, kernel_size=3, activation="relu")(inputs)
x = layers.MaxPool3D(pool_size=2)(x)
x = layers.BatchNormalization()(x)
x = layers.Conv3D(filters=6, kernel_size=(2, 2, 1), padding="same", activation="relu")(x)
x = layers.GlobalAveragePooling3D()(x)
outputs = layers.Dense(units=1, activation="sigmoid")(x)
model = seeded_weights(keras.Model(inputs, outputs, name="3dcnn"))
model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=1e-3),
              metrics=["acc"])
history = model.fit(volumes, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)

save_results({
    "shapes": [list(layer.output.shape) for layer in model.layers],
    "loss": history.history["loss"],
    "predict": model.predict(volumes[:4], verbose=0),
})
