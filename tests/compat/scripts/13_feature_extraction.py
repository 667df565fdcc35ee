"""Model.input / Model.output / layer.output on a functional model, feature-extraction models built
from them, get_layer, and predict on 1-D input (Keras adds the trailing size-1 axis)."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

inputs = keras.Input(shape=(6,), name="x")
h1 = layers.Dense(5, activation="relu", name="h1")(inputs)
h2 = layers.Dense(4, activation="tanh", name="h2")(h1)
outputs = layers.Dense(2, name="out")(h2)
model = seeded_weights(keras.Model(inputs, outputs))

extractor = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers[1:]])
middle = keras.Model(model.input, model.get_layer("h2").output)
probe = np.random.default_rng(13).normal(size=(3, 6)).astype("float32")
features = extractor.predict(probe, verbose=0)

scalar_model = seeded_weights(keras.Sequential([keras.Input((1,)), layers.Dense(3)]), seed=1)
one_d = np.linspace(-1, 1, 5).astype("float32")

save_results({
    "input_shape": list(model.input.shape),
    "output_shape": list(model.output.shape),
    "h2_output_shape": list(model.get_layer("h2").output.shape),
    "h2_input_shape": list(model.get_layer("h2").input.shape),
    "model_input_shape": list(model.input_shape),
    "model_output_shape": list(model.output_shape),
    "feature_count": len(features),
    "features": features,
    "middle": middle.predict(probe, verbose=0),
    "shares_weights": middle.get_layer("h1") is model.get_layer("h1"),
    "predict_1d": scalar_model.predict(one_d, verbose=0),
    "predict_1d_shape": list(scalar_model.predict(one_d, verbose=0).shape),
})
