"""LSTM forecasting: sliding windows over a multivariate series (past 12 steps -> the value 3 steps
ahead), an LSTM regressor, EarlyStopping with restore_best_weights and a ModelCheckpoint of the best
weights, then the loaded checkpoint's forecasts. (Keras' weather example makes the windows with
timeseries_dataset_from_array, which needs TensorFlow; here numpy makes the same windows.)"""

import keras
import numpy as np
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(26)
t = np.arange(300)
series = np.stack([np.sin(t / 8), np.cos(t / 13), 0.1 * rng.normal(size=300)], axis=1).astype("float32")
mean, std = series[:200].mean(axis=0), series[:200].std(axis=0)
series = (series - mean) / std
past, ahead = 12, 3
starts = np.arange(0, len(series) - past - ahead)
windows = np.stack([series[s:s + past] for s in starts])
targets = series[starts + past + ahead - 1, :1]
x_train, y_train, x_val, y_val = windows[:160], targets[:160], windows[160:220], targets[160:220]

inputs = keras.layers.Input(shape=(past, 3))
lstm_out = keras.layers.LSTM(8)(inputs)
outputs = keras.layers.Dense(1)(lstm_out)
model = seeded_weights(keras.Model(inputs=inputs, outputs=outputs))
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.005), loss="mse")
callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=2,
                                           restore_best_weights=True),
             keras.callbacks.ModelCheckpoint("forecast.weights.h5", monitor="val_loss",
                                             save_weights_only=True, save_best_only=True)]
history = model.fit(x_train, y_train, epochs=3, batch_size=32, shuffle=False,
                    validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)
restored = keras.Model(inputs=inputs, outputs=keras.layers.Dense(1)(keras.layers.LSTM(8)(inputs)))
restored.load_weights("forecast.weights.h5")

save_results({
    "history": history.history,
    "forecast": model.predict(x_val[:5], verbose=0),
    "from_checkpoint": restored.predict(x_val[:5], verbose=0),
})
