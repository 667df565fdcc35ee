"""Training from a keras.utils.PyDataset subclass (batches built in __getitem__), with
validation from another one, and predict from a dataset yielding inputs only."""

import math

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, x, y=None, batch_size=8, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.y is None:
            return self.x[window]
        return self.x[window], self.y[window]


rng = np.random.default_rng(18)
x = rng.normal(size=(42, 5)).astype("float32")
y = (x[:, :2].sum(axis=1) > 0).astype("int32")
model = seeded_weights(keras.Sequential([keras.Input((5,)), layers.Dense(6, activation="relu"),
                                         layers.Dense(2, activation="softmax")]))
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(ArrayBatches(x, y), validation_data=ArrayBatches(x[:16], y[:16], batch_size=16),
                    epochs=2, shuffle=False, verbose=0)
save_results({
    "length": len(ArrayBatches(x, y)),
    "history": history.history,
    "predict": model.predict(ArrayBatches(x[:10], batch_size=4), verbose=0),
    "evaluate": model.evaluate(ArrayBatches(x, y, batch_size=21), verbose=0),
})
