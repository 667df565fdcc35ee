"""Arithmetic, slicing and ops on symbolic tensors in a functional graph, plus an ops-only layer."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class GatedResidual(layers.Layer):
    """x * sigmoid(x W) + mean-centred x, written with ops only."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], input_shape[-1]), initializer="zeros")

    def call(self, x):
        gate = ops.sigmoid(ops.matmul(x, self.kernel))
        centred = x - ops.mean(x, axis=-1, keepdims=True)
        return x * gate + centred


inputs = keras.Input(shape=(8,))
x = layers.Dense(8)(inputs)
x = x + inputs                      # residual on symbolic tensors
x = x * 2 - 1
x = -x / 3.0
head, tail = x[:, :4], x[:, 4:]     # slicing
mixed = ops.concatenate([ops.relu(head), ops.tanh(tail)], axis=-1)
mixed = GatedResidual()(mixed)
scores = ops.einsum("bi,bi->b", mixed, inputs)
pooled = ops.expand_dims(scores, -1) + ops.max(mixed, axis=-1, keepdims=True)
normed = ops.softmax(layers.Dense(3)(mixed) ** 2, axis=-1)
outputs = layers.Concatenate()([pooled, normed, ops.square(x[:, ::3])])
model = keras.Model(inputs, outputs)
seeded_weights(model)

probe = np.random.default_rng(3).normal(size=(4, 8)).astype("float32")
save_results({
    "output_shape": list(model.output.shape),
    "layer_count": len(model.layers) > 3,
    "predict": model.predict(probe, verbose=0),
    "call": ops.convert_to_numpy(model(probe)),
})
