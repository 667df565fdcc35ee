"""keras.random and SeedGenerator: shapes, ranges, reproducibility, and noise inside a layer.

The two frameworks need not draw the same numbers, so the script records properties that any
correct implementation has: ranges, moments of large samples, and which calls repeat.
"""

import keras
import numpy as np
from keras import layers, ops
from scriptkit import save_results


class GaussianJitter(layers.Layer):
    def __init__(self, stddev, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, x, training=False):
        if training:
            return x + keras.random.normal(ops.shape(x), stddev=self.stddev, seed=self.seed_generator)
        return x


def numpy(t):
    return ops.convert_to_numpy(t)


normal = numpy(keras.random.normal((20000,), mean=1.0, stddev=2.0, seed=1))
uniform = numpy(keras.random.uniform((20000,), minval=-1.0, maxval=3.0, seed=2))
ints = numpy(keras.random.randint((5000,), 0, 7, seed=3))
dropped = numpy(keras.random.dropout(ops.ones((20000,)), rate=0.25, seed=4))
shuffled = numpy(keras.random.shuffle(ops.arange(100), seed=5))
truncated = numpy(keras.random.truncated_normal((20000,), stddev=1.0, seed=6))
generator = keras.random.SeedGenerator(42)
first, second = (numpy(keras.random.uniform((8,), seed=generator)) for _ in range(2))

jitter = GaussianJitter(0.5)
x = np.zeros((2000, 4), "float32")
noisy = numpy(jitter(x, training=True))
noisy_again = numpy(jitter(x, training=True))

save_results({
    "normal_mean": float(normal.mean()), "normal_std": float(normal.std()),
    "normal_dtype": str(normal.dtype),
    "uniform_range": bool(uniform.min() >= -1 and uniform.max() < 3), "uniform_mean": float(uniform.mean()),
    "randint_values": sorted(set(ints.tolist())), "randint_dtype": str(ints.dtype),
    "dropout_zero_fraction": float((dropped == 0).mean()),
    "dropout_kept_value": float(dropped.max()),
    "shuffle_is_permutation": sorted(shuffled.tolist()) == list(range(100)),
    "shuffle_moved": bool((shuffled != np.arange(100)).any()),
    "truncated_within_2_std": bool(np.abs(truncated).max() <= 2.0 + 1e-6),
    "same_int_seed_repeats": bool(np.array_equal(
        numpy(keras.random.normal((5,), seed=11)), numpy(keras.random.normal((5,), seed=11)))),
    "seed_generator_advances": not np.array_equal(first, second),
    "jitter_std": float(noisy.std()),
    "jitter_inference_is_identity": bool(np.array_equal(numpy(jitter(x)), x)),
    "jitter_calls_differ": not np.array_equal(noisy, noisy_again),
})
