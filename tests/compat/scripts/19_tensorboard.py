"""callbacks.TensorBoard writes event files during fit (scalars per epoch)."""

import os

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(19)
x = rng.normal(size=(32, 4)).astype("float32")
model = seeded_weights(keras.Sequential([keras.Input((4,)), layers.Dense(1)]))
model.compile(optimizer="sgd", loss="mse")
history = model.fit(x, x[:, :1], batch_size=8, epochs=2, shuffle=False, verbose=0,
                    validation_data=(x[:8], x[:8, :1]),
                    callbacks=[keras.callbacks.TensorBoard(log_dir="logs")])
written = sorted({os.path.relpath(root, "logs") for root, _, files in os.walk("logs")
                  if any("tfevents" in f for f in files)})
save_results({"loss": history.history["loss"], "event_dirs": written})
