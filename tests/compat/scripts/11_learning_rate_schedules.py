"""Learning-rate schedules: their values step by step, and each one driving an optimizer in fit."""

import keras
import numpy as np
from keras import layers, ops
from keras.optimizers import schedules
from scriptkit import save_results, seeded_weights

made = {
    "exponential": schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5),
    "exponential_staircase": schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True),
    "cosine": schedules.CosineDecay(0.1, decay_steps=10, alpha=0.1),
    "cosine_warmup": schedules.CosineDecay(0.0, decay_steps=8, warmup_target=0.1, warmup_steps=3),
    "piecewise": schedules.PiecewiseConstantDecay([3, 6], [0.1, 0.05, 0.01]),
    "inverse_time": schedules.InverseTimeDecay(0.1, decay_steps=2, decay_rate=0.5),
    "polynomial": schedules.PolynomialDecay(0.1, decay_steps=8, end_learning_rate=0.01, power=2.0),
}
values = {name: [float(ops.convert_to_numpy(s(step))) for step in range(12)] for name, s in made.items()}

rng = np.random.default_rng(11)
x = rng.normal(size=(32, 4)).astype("float32")
y = x @ rng.normal(size=(4, 2)).astype("float32")
losses, final_rates = {}, {}
for name, schedule in made.items():
    model = seeded_weights(keras.Sequential([keras.Input((4,)), layers.Dense(2)]))
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    model.compile(optimizer=optimizer, loss="mse")
    losses[name] = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    final_rates[name] = float(ops.convert_to_numpy(optimizer.learning_rate))

save_results({
    "values": values,
    "losses": losses,
    "final_rates": final_rates,
    "config": schedules.serialize(made["piecewise"])["config"],
    "round_trip": float(ops.convert_to_numpy(
        schedules.deserialize(schedules.serialize(made["exponential"]))(5))),
})
