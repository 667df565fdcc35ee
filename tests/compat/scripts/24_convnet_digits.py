"""An MNIST-style convnet on scikit-learn's 8x8 digits: Conv2D, MaxPooling2D, Flatten, Dropout,
softmax, categorical cross-entropy on one-hot targets from to_categorical.

Dropout makes training stochastic: predictions are compared before training (shared weights,
inference mode), the training curve within a band."""

import keras
from keras import layers
from scriptkit import save_results, seeded_weights
from sklearn.datasets import load_digits

digits = load_digits()
x = (digits.images[:400] / 16.0).astype("float32")[..., None]
y = keras.utils.to_categorical(digits.target[:400], 10)

model = keras.Sequential([
    keras.Input(shape=(8, 8, 1)),
    layers.Conv2D(8, kernel_size=(3, 3), activation="relu", padding="same"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
    layers.Flatten(),
    layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
seeded_weights(model, scale=0.2)
before = model.predict(x[:5], verbose=0)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x[:320], y[:320], batch_size=32, epochs=5, validation_split=0.1, verbose=0)
score = model.evaluate(x[320:], y[320:], verbose=0)

save_results({
    "one_hot": y[:3],
    "before": before,
    "loss": history.history["loss"],
    "final_accuracy": history.history["accuracy"][-1],
    "test_accuracy": score[1],
    "improved": history.history["loss"][-1] < history.history["loss"][0],
})
