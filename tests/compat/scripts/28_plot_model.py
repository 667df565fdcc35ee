"""utils.plot_model draws a functional model's graph to a PNG (needs pydot and graphviz)."""

import os

import keras
from keras import layers
from scriptkit import save_results

inputs = keras.Input((8,), name="features")
left = layers.Dense(4, name="left")(inputs)
right = layers.Dense(4, name="right")(inputs)
outputs = layers.Dense(1, name="joined")(layers.Concatenate()([left, right]))
model = keras.Model(inputs, outputs)
keras.utils.plot_model(model, to_file="model.png", show_shapes=True, show_layer_names=True)
with open("model.png", "rb") as f:
    signature = f.read(8)
save_results({"png": signature == b"\x89PNG\r\n\x1a\n", "size_positive": os.path.getsize("model.png") > 0})
