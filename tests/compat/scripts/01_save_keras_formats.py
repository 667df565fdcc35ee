"""Save and load in Keras' own formats: .keras archives, .weights.h5 files, ModelCheckpoint."""

import keras
import numpy as np
from keras import layers
from scriptkit import save_results, seeded_weights


def make_model():
    inputs = keras.Input(shape=(6,), name="features")
    x = layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = layers.BatchNormalization(name="norm")(x)
    outputs = layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="saver")


rng = np.random.default_rng(1)
x = rng.normal(size=(64, 6)).astype("float32")
y = rng.integers(0, 3, size=64)
probe = x[:5]
np.save("probe.npy", probe)

model = seeded_weights(make_model())
model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
checkpoints = [
    keras.callbacks.ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True),
    keras.callbacks.ModelCheckpoint("epoch.weights.h5", save_weights_only=True),
]
history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, validation_data=(x[:16], y[:16]),
                    callbacks=checkpoints, verbose=0)
trained = model.predict(probe, verbose=0)

model.save("model.keras")
restored = keras.models.load_model("model.keras")
model.save_weights("model.weights.h5")
fresh = make_model()
fresh.load_weights("model.weights.h5")
from_checkpoint = make_model()
from_checkpoint.load_weights("epoch.weights.h5")
best = keras.saving.load_model("best.keras")

save_results({
    "loss": history.history["loss"],
    "val_loss": history.history["val_loss"],
    "trained": trained,
    "restored": restored.predict(probe, verbose=0),
    "restored_layers": [layer.name for layer in restored.layers],
    "restored_optimizer": type(restored.optimizer).__name__,
    "from_weights_h5": fresh.predict(probe, verbose=0),
    "from_epoch_checkpoint": from_checkpoint.predict(probe, verbose=0),
    "best_checkpoint": best.predict(probe, verbose=0),
})
