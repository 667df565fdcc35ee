"""A Conv1D time-series classifier in the style of Keras' timeseries example: three
Conv1D-BatchNorm-ReLU blocks, global average pooling, softmax; EarlyStopping and
ReduceLROnPlateau on a validation split."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights


def make_series(n, rng):
    t = np.linspace(0, 1, 40)
    labels = rng.integers(0, 2, size=n)
    freq = np.where(labels == 1, 6.0, 3.0)[:, None]
    series = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, (n, 1))) + 0.3 * rng.normal(size=(n, 40))
    return series[..., None].astype("float32"), labels


rng = np.random.default_rng(23)
x_train, y_train = make_series(48, rng)
x_test, y_test = make_series(16, rng)

input_layer = keras.layers.Input(x_train.shape[1:])
x = input_layer
for filters in (8, 8, 8):
    x = layers.Conv1D(filters=filters, kernel_size=3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
gap = layers.GlobalAveragePooling1D()(x)
output_layer = layers.Dense(2, activation="softmax")(gap)
model = seeded_weights(keras.models.Model(inputs=input_layer, outputs=output_layer))

callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4),
             keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, verbose=0)]
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
              metrics=["sparse_categorical_accuracy"])
history = model.fit(x_train, y_train, batch_size=16, epochs=4, callbacks=callbacks, validation_split=0.25,
                    shuffle=False, verbose=0)
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)

save_results({
    "history": history.history,
    "test": [test_loss, test_acc],
    "predict": model.predict(x_test[:4], verbose=0),
})
