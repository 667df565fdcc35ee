"""The three reference workloads of the speed benchmark: architecture, data and initial weights;
and two larger models that only bench/gpu_check.py trains (`LARGER`).

Every framework trains the same model on the same data from the same starting point: the data
comes from one seeded numpy generator, and the initial weights are drawn here, once, in Keras'
order and shapes (glorot-uniform kernels, zero biases, the LSTM's forget-gate bias at one, BN at
gamma 1, beta 0, moving mean 0, moving variance 1). Each framework loads them into its own
layout, and the harness checks that every framework then reports the same initial loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
LEARNING_RATE = 1e-3
# Keras' Adam and BatchNormalization defaults; the torch peers are given the same values so that
# all frameworks do the same arithmetic (torch's own defaults are eps 1e-8, BN eps 1e-5, momentum 0.1).
ADAM_EPSILON = 1e-7
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # Keras convention: moving = 0.99 * moving + 0.01 * batch
FCN_BLOCKS = ((128, 8), (256, 5), (128, 3))  # (filters, kernel size)
LSTM_UNITS = 64
MLP_UNITS = 500
MLP_DROPOUT = (0.1, 0.2, 0.2, 0.3)  # before each Dense, as in Wang et al. (2017)
RESNET_BLOCKS = (64, 128, 128)  # filters of the zoo's ResNet (lamina.tsc.resnet), kernels 8, 5, 3
CONV2D_FILTERS = (32, 64, 128)  # each: Conv2D 3x3 + BN + ReLU, then 2x2 max pooling


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    input_shape: tuple[int, ...]
    batch_size: int
    classes: int = 10


WORKLOADS = {
    "fcn": Workload("fcn", "FCN (Conv1D+BN+ReLU x3, GAP, Dense; 150x1)", (150, 1), 16),
    "lstm": Workload("lstm", "LSTM(64) classifier (100x8)", (100, 8), 32),
    "mlp": Workload("mlp", "MLP (Dropout + Dense 500 x3; 64 features)", (64,), 32),
}


# Larger models for the GPU check: launch-bound small models are not the whole story there.
LARGER = {
    "resnet": Workload("resnet", "ResNet of the zoo (3 residual blocks; 150x1)", (150, 1), 64),
    "conv2d": Workload("conv2d", "Conv2D classifier (3 x Conv+BN+ReLU+pool; 32x32x3)", (32, 32, 3), 256),
}


def get(name: str) -> Workload:
    found = WORKLOADS.get(name) or LARGER.get(name)
    if found is None:
        raise ValueError(f"Unknown model {name!r}; choose from {sorted(WORKLOADS | LARGER)}.")
    return found


def dataset(workload: Workload, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random float32 samples and integer labels; the first samples are the same for every n
    (one generator for x and one for y, each drawn from its start)."""
    x = np.random.default_rng(SEED).standard_normal((n, *workload.input_shape), dtype=np.float32)
    y = np.random.default_rng(SEED + 1).integers(0, workload.classes, size=n)
    return x, y


def _glorot(rng, shape) -> np.ndarray:
    # Keras' fans: a kernel (..., fan_in, fan_out) with the leading axes as the receptive field.
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_weights(workload: Workload) -> list[np.ndarray] | None:
    """The starting weights in Keras' `get_weights()` order and shapes; None for the `LARGER`
    models, which each framework initializes itself (they are timed, not compared)."""
    if workload.name in LARGER:
        return None
    rng = np.random.default_rng(SEED + 2)
    weights = []
    if workload.name == "fcn":
        channels = workload.input_shape[-1]
        for filters, kernel in FCN_BLOCKS:
            weights += [_glorot(rng, (kernel, channels, filters)), np.zeros(filters, np.float32),
                        np.ones(filters, np.float32), np.zeros(filters, np.float32),
                        np.zeros(filters, np.float32), np.ones(filters, np.float32)]
            channels = filters
    elif workload.name == "lstm":
        units = LSTM_UNITS
        bias = np.zeros(4 * units, np.float32)
        bias[units:2 * units] = 1.0  # unit_forget_bias; the gates are ordered i, f, c, o
        weights += [_glorot(rng, (workload.input_shape[-1], 4 * units)),
                    _glorot(rng, (units, 4 * units)), bias]
        channels = units
    else:
        channels = workload.input_shape[-1]
        for _ in range(3):
            weights += [_glorot(rng, (channels, MLP_UNITS)), np.zeros(MLP_UNITS, np.float32)]
            channels = MLP_UNITS
    weights += [_glorot(rng, (channels, workload.classes)), np.zeros(workload.classes, np.float32)]
    return weights


def keras_style_model(api, workload: Workload):
    """The workload as a Sequential model of `api` (the `keras` or the `lamina` module): the same
    code builds both, which is the point of lamina."""
    layers = api.layers
    if workload.name == "resnet":
        return _resnet(api, workload)
    stack = [layers.Input(workload.input_shape)]
    if workload.name == "conv2d":
        for filters in CONV2D_FILTERS:
            stack += [layers.Conv2D(filters, 3, padding="same"),
                      layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON),
                      layers.Activation("relu"), layers.MaxPooling2D(2)]
        stack.append(layers.GlobalAveragePooling2D())
    elif workload.name == "fcn":
        for filters, kernel in FCN_BLOCKS:
            stack += [layers.Conv1D(filters, kernel, padding="same"),
                      layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON),
                      layers.Activation("relu")]
        stack.append(layers.GlobalAveragePooling1D())
    elif workload.name == "lstm":
        stack.append(layers.LSTM(LSTM_UNITS))
    else:
        for rate in MLP_DROPOUT[:-1]:
            stack += [layers.Dropout(rate), layers.Dense(MLP_UNITS, activation="relu")]
        stack.append(layers.Dropout(MLP_DROPOUT[-1]))
    stack.append(layers.Dense(workload.classes, activation="softmax"))
    return api.Sequential(stack)


def _resnet(api, workload: Workload):
    """lamina.tsc.resnet's architecture in Keras' functional API: per block Conv 8/5/3 + BN (ReLU
    after the first two), a shortcut (Conv1D(1) + BN where the channel count changes, else BN),
    the sum through a ReLU; then global average pooling and softmax."""
    layers = api.layers

    def bn():
        return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)

    inp = layers.Input(workload.input_shape)
    h, channels = inp, workload.input_shape[-1]
    for filters in RESNET_BLOCKS:
        y = h
        for kernel in (8, 5):
            y = layers.Activation("relu")(bn()(layers.Conv1D(filters, kernel, padding="same")(y)))
        y = bn()(layers.Conv1D(filters, 3, padding="same")(y))
        shortcut = h if channels == filters else layers.Conv1D(filters, 1, padding="same")(h)
        h = layers.Activation("relu")(layers.Add()([y, bn()(shortcut)]))
        channels = filters
    out = layers.Dense(workload.classes, activation="softmax")(layers.GlobalAveragePooling1D()(h))
    return api.Model(inp, out)
