"""Preprocessing layers inside a model: Rescaling and Resizing in front of a small convnet,
plus Normalization adapted on data."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(20)
images = rng.integers(0, 256, size=(6, 12, 10, 3)).astype("float32")

model = keras.Sequential([
    keras.Input((12, 10, 3)),
    layers.Resizing(8, 8),
    layers.Rescaling(1.0 / 255, offset=-0.5),
    layers.Conv2D(4, 3, activation="relu"),
    layers.GlobalAveragePooling2D(),
    layers.Dense(2),
])
seeded_weights(model)
resize_nearest = layers.Resizing(6, 5, interpolation="nearest")(images)
crop = layers.Resizing(8, 8, crop_to_aspect_ratio=True)(images)
normalization = layers.Normalization(axis=-1)
normalization.adapt(images.reshape(-1, 3))

save_results({
    "predict": model.predict(images, verbose=0),
    "output_shapes": [list(layer.output.shape) for layer in model.layers],
    "rescaled": np.asarray(layers.Rescaling(2.0, offset=1.0)(images[:1, :2, :2])),
    "nearest": np.asarray(resize_nearest)[0, :, :, 0],
    "crop_shape": list(crop.shape),
    "crop": np.asarray(crop)[0, :3, :3, 0],
    "normalized_mean": np.asarray(normalization(images.reshape(-1, 3))).mean(axis=0),
})
