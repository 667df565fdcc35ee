"""initializers.get / serialize / deserialize, seeded initializers' statistics, and regularizers
(l2 on a kernel, l1_l2 on activity) whose penalties land in model.losses and in the fit loss."""

import keras
import numpy as np
from keras import initializers, layers, ops, regularizers
from scriptkit import save_results, seeded_weights

by_name = initializers.get("glorot_uniform")
by_config = initializers.get({"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.5}})
constant = initializers.Constant(0.25)
serialized = initializers.serialize(by_config)
rebuilt = initializers.deserialize(serialized)
he = initializers.HeNormal(seed=1)((400, 300))
orthogonal = ops.convert_to_numpy(initializers.Orthogonal(seed=2)((6, 6)))

l2 = regularizers.l2(0.01)
model = keras.Sequential([
    keras.Input((4,)),
    layers.Dense(3, kernel_regularizer=l2, bias_regularizer="l1", kernel_initializer=constant),
    layers.Dense(1, activity_regularizer=regularizers.L1L2(l1=0.01, l2=0.02)),
])
seeded_weights(model)
probe = np.random.default_rng(14).normal(size=(16, 4)).astype("float32")
model(probe)
penalties = [float(ops.convert_to_numpy(loss)) for loss in model.losses]
model.compile(optimizer="sgd", loss="mse")
history = model.fit(probe, probe[:, :1], batch_size=8, epochs=2, shuffle=False, verbose=0)

save_results({
    "by_name": type(by_name).__name__,
    "by_config": [type(by_config).__name__, by_config.get_config()["stddev"]],
    "serialized_class": serialized["class_name"],
    "serialized_config": {k: serialized["config"][k] for k in ("mean", "stddev")},
    "rebuilt": type(rebuilt).__name__,
    "constant": ops.convert_to_numpy(constant((2, 2))),
    "he_std": float(ops.convert_to_numpy(ops.std(he))),
    "orthogonal": np.allclose(orthogonal @ orthogonal.T, np.eye(6), atol=1e-4),
    "l2_value": float(ops.convert_to_numpy(l2(ops.ones((2, 3))))),
    "l2_config": regularizers.serialize(l2)["config"],
    "regularizer_get": type(regularizers.get({"class_name": "L1L2", "config": {"l1": 0.1}})).__name__,
    "penalties": penalties,
    "loss": history.history["loss"],
})
