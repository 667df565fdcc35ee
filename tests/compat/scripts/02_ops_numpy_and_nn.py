"""The ops namespace on concrete tensors: numpy-like ops and ops.nn, each result recorded."""

import keras
import numpy as np
from keras import ops
from scriptkit import save_results

rng = np.random.default_rng(2)
a_np = rng.normal(size=(2, 3, 4)).astype("float32")
b_np = rng.normal(size=(2, 4, 5)).astype("float32")
a = ops.convert_to_tensor(a_np)
b = ops.convert_to_tensor(b_np)
positive = ops.abs(a) + 0.5

numpy_like = {
    "mean": ops.mean(a, axis=-1),
    "sum": ops.sum(a, axis=(0, 2)),
    "max": ops.max(a, axis=1),
    "min": ops.min(a),
    "argmax": ops.argmax(a, axis=-1),
    "concatenate": ops.concatenate([a, a], axis=1),
    "stack": ops.stack([a[0], a[1]], axis=0),
    "expand_dims": ops.shape(ops.expand_dims(a, 1)),
    "squeeze": ops.squeeze(ops.expand_dims(a, 0), axis=0),
    "reshape": ops.reshape(a, (6, -1)),
    "transpose": ops.transpose(a, (2, 0, 1)),
    "matmul": ops.matmul(a, b),
    "einsum": ops.einsum("bij,bjk->bik", a, b),
    "where": ops.where(a > 0, a, ops.zeros_like(a)),
    "maximum": ops.maximum(a, 0.1),
    "minimum": ops.minimum(a, -0.1),
    "abs": ops.abs(a),
    "square": ops.square(a),
    "sqrt": ops.sqrt(positive),
    "exp": ops.exp(a),
    "log": ops.log(positive),
    "tanh": ops.tanh(a),
    "clip": ops.clip(a, -0.5, 0.5),
    "cast": ops.cast(ops.cast(a * 10, "int32"), "float32"),
    "shape": list(ops.shape(a)),
    "arange": ops.arange(0, 10, 3),
    "zeros": ops.zeros((2, 3)),
    "ones": ops.ones((3,)),
    "linspace": ops.linspace(0.0, 1.0, 5),
    "cumsum": ops.cumsum(a, axis=1),
    "norm": ops.norm(a_np[0], axis=-1),
    "take": ops.take(a, ops.convert_to_tensor([0, 2]), axis=1),
    "tile": ops.tile(a[0], (2, 1)),
    "split": [ops.shape(part) for part in ops.split(a, 2, axis=2)],
    "sort": ops.sort(a, axis=-1),
    "std": ops.std(a, axis=0),
    "var": ops.var(a, axis=2),
    "logical_and": ops.cast(ops.logical_and(a > 0, b[:, :3, :4] > 0), "int32"),
    "equal": ops.cast(ops.equal(ops.argmax(a, -1), 1), "int32"),
    "dtype_of_cast": str(ops.cast(a, "float16").dtype).split(".")[-1],
}
nn = {
    "relu": ops.relu(a),
    "sigmoid": ops.sigmoid(a),
    "softmax": ops.softmax(a, axis=-1),
    "log_softmax": ops.log_softmax(a, axis=-1),
    "gelu": ops.gelu(a),
    "silu": ops.silu(a),
    "one_hot": ops.one_hot(ops.convert_to_tensor([0, 2, 1]), 3),
    "nn.relu": keras.ops.nn.relu(a),
    "softplus": ops.softplus(a),
    "leaky_relu": ops.leaky_relu(a, negative_slope=0.1),
    "sparse_categorical_crossentropy": ops.sparse_categorical_crossentropy(
        ops.convert_to_tensor([0, 2]), a[0, :2, :3], from_logits=True),
    "binary_crossentropy": ops.binary_crossentropy(ops.ones((2, 3)), ops.sigmoid(a[0, :2, :3])),
    "moments": ops.moments(a, axes=[0, 1]),
    "normalize": ops.normalize(a, axis=-1),
    "conv": ops.conv(a, ops.ones((2, 4, 3)) * 0.1, padding="same"),
    "max_pool": ops.max_pool(a, pool_size=2, strides=1),
}
save_results({"numpy_like": {k: ops.convert_to_numpy(v) if not isinstance(v, (list, str)) else v
                             for k, v in numpy_like.items()},
              "nn": {k: v for k, v in nn.items()}})
