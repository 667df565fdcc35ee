"""A subclassed model's own train_step / test_step / predict_step, in the torch-backend guide's
pattern (zero_grad, compute_loss, backward, optimizer.apply, self.metrics)."""

import keras
import numpy as np
import torch
from keras import layers
from scriptkit import save_results, seeded_weights


class StepCountingModel(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="tanh")
        self.out = layers.Dense(1)
        self.calls = {"train": 0, "test": 0, "predict": 0}

    def call(self, x):
        return self.out(self.hidden(x))

    def train_step(self, data):
        self.calls["train"] += 1
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        return self.update_metrics(loss, y, y_pred)

    def test_step(self, data):
        self.calls["test"] += 1
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        return self.update_metrics(loss, y, y_pred)

    def update_metrics(self, loss, y, y_pred):
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, data):
        self.calls["predict"] += 1
        x = data[0] if isinstance(data, (list, tuple)) else data
        return {"value": self(x, training=False), "doubled": 2 * self(x, training=False)}


rng = np.random.default_rng(6)
x = rng.normal(size=(40, 3)).astype("float32")
y = (np.sin(x).sum(axis=1, keepdims=True)).astype("float32")

model = StepCountingModel()
model(x[:1])  # builds the sublayers
seeded_weights(model)
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
history = model.fit(x, y, batch_size=10, epochs=3, shuffle=False, validation_data=(x[:20], y[:20]),
                    verbose=0)
evaluated = model.evaluate(x, y, batch_size=20, verbose=0, return_dict=True)
predicted = model.predict(x[:6], batch_size=3, verbose=0)
model.reset_metrics()
after_reset = [float(m.result()) if m.name == "loss" else None for m in model.metrics]

save_results({
    "history": history.history,
    "evaluate": evaluated,
    "predict_keys": sorted(predicted),
    "predict_value": predicted["value"],
    "predict_doubled": predicted["doubled"],
    "calls": model.calls,
    "after_reset": after_reset,
    "metric_names": [m.name for m in model.metrics],
})
