"""Keras 3 as its users write it, on the backend the worker's KERAS_BACKEND names (torch or JAX)."""

from __future__ import annotations

import keras

from bench.frameworks.keras_api import FitRunner


class KerasRunner(FitRunner):
    def predict_paths(self, x1):
        tensor = keras.ops.convert_to_tensor(x1)
        return {
            "predict()": lambda: self.model.predict(x1, verbose=0),
            # convert_to_numpy waits for JAX's asynchronous result and detaches torch's.
            "model(x)": lambda: keras.ops.convert_to_numpy(self.model(tensor, training=False)),
        }


def make_runner(framework_id, workload, weights, options):
    return KerasRunner(keras, workload, weights)
