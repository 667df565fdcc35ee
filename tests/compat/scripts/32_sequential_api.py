"""The Sequential model guide's moves: add() one layer at a time, pop(), model.layers and weights,
building by calling, and a feature extractor over a Sequential's layers."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

model = keras.Sequential(name="grown")
model.add(keras.Input(shape=(4,)))
model.add(layers.Dense(6, activation="relu", name="first"))
model.add(layers.Dense(5, activation="relu", name="second"))
model.add(layers.Dense(3, name="third"))
before_pop = [layer.name for layer in model.layers]
model.pop()
model.add(layers.Dense(2, name="last"))
seeded_weights(model)

lazy = keras.Sequential([layers.Dense(3), layers.Dense(1)])
lazy_weights_before = len(lazy.weights)
lazy(np.ones((2, 7), "float32"))

extractor = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
probe = np.random.default_rng(32).normal(size=(3, 4)).astype("float32")
save_results({
    "before_pop": before_pop,
    "after_pop": [layer.name for layer in model.layers],
    "weights": len(model.weights),
    "params": model.count_params(),
    "lazy_weights": [lazy_weights_before, len(lazy.weights)],
    "predict": model.predict(probe, verbose=0),
    "features": extractor.predict(probe, verbose=0),
    "get_layer": model.get_layer(index=1).name,
})
