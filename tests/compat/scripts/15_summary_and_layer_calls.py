"""summary() of an unbuilt model and with show_trainable, Input(batch_shape=), layers called
directly on numpy arrays, and a layer called with two tensors."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class WeightedSum(layers.Layer):
    """Called with two tensors: a * w + b * (1 - w)."""

    def build(self, a_shape, b_shape):
        self.w = self.add_weight(shape=(a_shape[-1],), initializer="zeros")

    def call(self, a, b):
        return a * self.w + b * (1.0 - self.w)


lines = []
unbuilt = keras.Sequential([layers.Dense(4, activation="relu", name="d1"), layers.Dense(2, name="d2")],
                           name="lazy")
unbuilt.summary(print_fn=lines.append)
unbuilt_text = "\n".join(lines)
was_built = unbuilt.built
unbuilt.build((None, 3))

frozen = keras.Sequential([keras.Input((3,)), layers.Dense(4, name="base"), layers.Dense(1, name="head")])
frozen.get_layer("base").trainable = False
lines = []
frozen.summary(print_fn=lines.append, show_trainable=True)
trainable_text = "\n".join(lines)

inputs = keras.Input(batch_shape=(5, 3), name="fixed")
outputs = layers.Dense(2)(inputs)
fixed = seeded_weights(keras.Model(inputs, outputs))
a = np.random.default_rng(15).normal(size=(5, 3)).astype("float32")

dense = layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")
on_numpy = dense(a)                               # a layer called on a numpy array
pair = WeightedSum()
pair_out = pair(a, 2 * a)                         # a layer called with two tensors
pair.set_weights([np.full((3,), 0.25, "float32")])

save_results({
    "unbuilt_mentions_layers": ["d1" in unbuilt_text, "d2" in unbuilt_text, "lazy" in unbuilt_text],
    "unbuilt_says_unbuilt": "unbuilt" in unbuilt_text.lower(),
    "was_built": was_built,
    "params_after_build": unbuilt.count_params(),
    "trainable_column": "Trainable" in trainable_text,
    "trainable_counts": [len(frozen.trainable_weights), len(frozen.non_trainable_weights)],
    "batch_shape": list(fixed.input.shape),
    "batch_output_shape": list(fixed.output.shape),
    "fixed_predict": fixed.predict(a, verbose=0),
    "on_numpy": ops.convert_to_numpy(on_numpy),
    "on_numpy_is_tensor": not isinstance(on_numpy, np.ndarray),
    "pair_initial": ops.convert_to_numpy(pair_out),
    "pair_after": ops.convert_to_numpy(pair(a, 2 * a)),
})
