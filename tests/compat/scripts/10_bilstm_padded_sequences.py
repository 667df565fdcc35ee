"""Variable-length integer sequences: pad_sequences, Embedding(mask_zero=True), a bidirectional
LSTM stack, binary classification."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(10)
sequences = [list(rng.integers(1, 20, size=rng.integers(2, 12))) for _ in range(40)]
labels = np.array([int(sum(s) % 2) for s in sequences])
padded = keras.utils.pad_sequences(sequences, maxlen=10)
post = keras.utils.pad_sequences(sequences, maxlen=8, padding="post", truncating="post", value=0)

inputs = keras.Input(shape=(None,), dtype="int32")
x = layers.Embedding(20, 8, mask_zero=True)(inputs)
x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
x = layers.Bidirectional(layers.LSTM(5))(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
seeded_weights(model)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
history = model.fit(padded, labels, batch_size=10, epochs=2, shuffle=False, verbose=0)

save_results({
    "padded": padded[:5], "padded_dtype": str(padded.dtype), "post": post[:5],
    "weight_shapes": [list(w.shape) for w in model.get_weights()],
    "loss": history.history["loss"],
    "predict": model.predict(padded[:6], verbose=0),
    "predict_post": model.predict(post[:6], verbose=0),
})
