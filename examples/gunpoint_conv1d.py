"""The main job for now: a small Conv1D classifier on aeon's GunPoint, trained and tested."""

import numpy as np

import lamina
from lamina import layers


def load(split):
    from aeon.datasets import load_classification

    x, y = load_classification("GunPoint", split=split)  # x: (n, channels, length)
    x = np.transpose(x, (0, 2, 1)).astype("float32")  # channels_last, as Keras holds it
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-8)
    return x, y


def main():
    lamina.utils.set_random_seed(0)
    x_train, y_train_raw = load("train")
    x_test, y_test_raw = load("test")
    classes = np.unique(y_train_raw)
    y_train = np.searchsorted(classes, y_train_raw)
    y_test = np.searchsorted(classes, y_test_raw)

    model = lamina.Sequential([
        layers.Input(x_train.shape[1:]),
        layers.Conv1D(64, 8, padding="same", activation="relu"),
        layers.Conv1D(64, 5, padding="same", activation="relu"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(len(classes), activation="softmax"),
    ])
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=16, epochs=60, verbose=2)
    result = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    print(f"GunPoint test accuracy: {result['accuracy']:.3f}")


if __name__ == "__main__":
    main()
