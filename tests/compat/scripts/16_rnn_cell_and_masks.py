"""layers.RNN over a custom cell (state_size, call(inputs, states)), and masks reaching a custom
layer's call(mask=) from Embedding(mask_zero=True) and from Masking."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class MinimalRNNCell(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform")

    def call(self, inputs, states):
        prev_output = states[0]
        output = ops.tanh(ops.matmul(inputs, self.kernel) + ops.matmul(prev_output, self.recurrent_kernel))
        return output, [output]


class MaskedMean(layers.Layer):
    """Mean over the time steps that the mask keeps."""

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


class TemporalScale(layers.Layer):
    """Keeps the mask flowing to the next layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return inputs * 2.0


rng = np.random.default_rng(16)
sequences = rng.normal(size=(4, 5, 3)).astype("float32")
rnn = seeded_weights(keras.Sequential([keras.Input((5, 3)), layers.RNN(MinimalRNNCell(4))]))
rnn_seq = layers.RNN(MinimalRNNCell(4), return_sequences=True, return_state=True)
all_steps, last_state = rnn_seq(sequences)
rnn_seq.set_weights(rnn.get_weights())
stacked = layers.RNN([MinimalRNNCell(3), MinimalRNNCell(2)])
stacked(sequences)
stacked.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in stacked.get_weights()])

tokens = np.array([[3, 5, 0, 0], [1, 2, 4, 0], [7, 0, 0, 0]])
inputs = keras.Input((4,), dtype="int32")
embedded = layers.Embedding(8, 3, mask_zero=True)(inputs)
masked_model = seeded_weights(keras.Model(inputs, MaskedMean()(TemporalScale()(embedded))))

padded = sequences.copy()
padded[:, 3:] = 0.0
masking_model = keras.Sequential([keras.Input((5, 3)), layers.Masking(0.0), MaskedMean()])

save_results({
    "rnn": rnn.predict(sequences, verbose=0),
    "rnn_sequences": ops.convert_to_numpy(rnn_seq(sequences)[0]),
    "rnn_state_shapes": [list(all_steps.shape), list(last_state.shape)],
    "stacked": ops.convert_to_numpy(stacked(sequences)),
    "embedding_mask": ops.convert_to_numpy(masked_model.layers[1].compute_mask(tokens)),
    "masked_mean": masked_model.predict(tokens, verbose=0),
    "masking": masking_model.predict(padded, verbose=0),
    "masking_matches_truncation": bool(np.allclose(masking_model.predict(padded, verbose=0),
                                                   sequences[:, :3].mean(axis=1), atol=1e-6)),
})
