"""A transformer encoder block classifier: MultiHeadAttention, residuals on symbolic tensors,
LayerNormalization, token and position embeddings; attention scores returned."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results

VOCAB, MAXLEN, DIM = 30, 10, 16


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(vocab_size, embed_dim)
        self.pos_emb = layers.Embedding(maxlen, embed_dim)

    def call(self, x):
        positions = ops.arange(0, ops.shape(x)[-1], 1)
        return self.token_emb(x) + self.pos_emb(positions)


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.dropout1(self.att(inputs, inputs), training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn_output)


inputs = layers.Input(shape=(MAXLEN,))
x = TokenAndPositionEmbedding(MAXLEN, VOCAB, DIM)(inputs)
x = TransformerBlock(DIM, 2, 32)(x)
x = layers.GlobalAveragePooling1D()(x)
outputs = layers.Dense(2, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
rng = np.random.default_rng(9)
model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32") for w in model.get_weights()])

tokens = rng.integers(1, VOCAB, size=(48, MAXLEN))
labels = (tokens[:, 0] > VOCAB // 2).astype("int32")
before = model.predict(tokens[:4], verbose=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
history = model.fit(tokens, labels, batch_size=16, epochs=2, shuffle=False, verbose=0)

# The attention layer alone: masks, cross attention and the scores.
mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=5)
query = rng.normal(size=(2, 4, 6)).astype("float32")
value = rng.normal(size=(2, 3, 7)).astype("float32")
mask = np.array([[[1, 1, 0]] * 4, [[1, 1, 1]] * 4], dtype=bool)
mha(query, value)
mha.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in mha.get_weights()])
attended, scores = mha(query, value, attention_mask=mask, return_attention_scores=True)
causal = mha(query, query[..., :6] @ np.ones((6, 7), "float32") / 7, use_causal_mask=True)

save_results({
    "weight_shapes": [list(w.shape) for w in model.get_weights()],
    "mha_weight_shapes": [list(w.shape) for w in mha.get_weights()],
    "before": before,
    "loss": history.history["loss"],
    "after": model.predict(tokens[:4], verbose=0),
    "attended": ops.convert_to_numpy(attended),
    "scores": ops.convert_to_numpy(scores),
    "causal": ops.convert_to_numpy(causal),
})
