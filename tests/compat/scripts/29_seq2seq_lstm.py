"""A character-level seq2seq shape in Keras' idiom: an LSTM encoder returning its states, and an
LSTM decoder started from them (teacher forcing), trained with categorical cross-entropy; then
inference models built from the trained layers."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights

TOKENS, LATENT = 6, 8
rng = np.random.default_rng(29)
source = keras.utils.to_categorical(rng.integers(0, TOKENS, size=(32, 5)), TOKENS)
decoder_in = keras.utils.to_categorical(rng.integers(0, TOKENS, size=(32, 4)), TOKENS)
decoder_target = np.roll(decoder_in, -1, axis=1)

encoder_inputs = keras.Input(shape=(None, TOKENS))
encoder = layers.LSTM(LATENT, return_state=True)
_, state_h, state_c = encoder(encoder_inputs)
encoder_states = [state_h, state_c]
decoder_inputs = keras.Input(shape=(None, TOKENS))
decoder_lstm = layers.LSTM(LATENT, return_sequences=True, return_state=True)
decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
decoder_dense = layers.Dense(TOKENS, activation="softmax")
decoder_outputs = decoder_dense(decoder_outputs)
model = seeded_weights(keras.Model([encoder_inputs, decoder_inputs], decoder_outputs))
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit([source, decoder_in], decoder_target, batch_size=8, epochs=2, shuffle=False, verbose=0)

encoder_model = keras.Model(encoder_inputs, encoder_states)
state_inputs = [keras.Input(shape=(LATENT,)), keras.Input(shape=(LATENT,))]
step_out, h, c = decoder_lstm(decoder_inputs, initial_state=state_inputs)
decoder_model = keras.Model([decoder_inputs] + state_inputs, [decoder_dense(step_out), h, c])
states = encoder_model.predict(source[:2], verbose=0)
step = decoder_model.predict([decoder_in[:2, :1]] + states, verbose=0)

save_results({
    "loss": history.history["loss"],
    "accuracy": history.history["accuracy"],
    "states": states,
    "step": step,
})
