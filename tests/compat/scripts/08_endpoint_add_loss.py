"""An endpoint layer that adds its own loss (add_loss) and a model compiled without a loss."""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results, seeded_weights


class LogisticEndpoint(layers.Layer):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, targets, logits, sample_weights=None):
        self.add_loss(self.loss_fn(targets, logits, sample_weights))
        return ops.sigmoid(logits)


class ActivityPenalty(layers.Layer):
    def __init__(self, rate=1e-2):
        super().__init__()
        self.rate = rate

    def call(self, x):
        self.add_loss(self.rate * ops.mean(ops.square(x)))
        return x


inputs = keras.Input(shape=(5,), name="inputs")
targets = keras.Input(shape=(1,), name="targets")
hidden = ActivityPenalty()(layers.Dense(6, activation="relu")(inputs))
logits = layers.Dense(1)(hidden)
predictions = LogisticEndpoint(name="predictions")(targets, logits)
model = keras.Model(inputs=[inputs, targets], outputs=predictions)
seeded_weights(model)
model.compile(optimizer=keras.optimizers.SGD(0.1))

rng = np.random.default_rng(8)
x = rng.normal(size=(60, 5)).astype("float32")
y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
data = {"inputs": x, "targets": y}
history = model.fit(data, batch_size=15, epochs=3, shuffle=False, verbose=0)
outputs = model.predict(data, verbose=0)
model(data)
save_results({
    "loss": history.history["loss"],
    "evaluate": model.evaluate(data, verbose=0, batch_size=30),
    "predict": outputs[:5],
    "losses_after_call": len(model.losses),
    "loss_values": [float(ops.convert_to_numpy(v)) for v in model.losses],
})
