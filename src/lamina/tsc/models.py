"""The deep baselines for time-series classification, built from the note's layers.

- `fcn`, `resnet`, `mlp`: Wang, Yan & Oates (2017), as re-run by Ismail Fawaz et al. (2019).
- `lstm_fcn`: Karim et al. (2017).

Each takes the input shape (length, channels) and the number of classes and returns a compiled-
ready functional `lamina.Model` ending in a softmax. `norm=` swaps the normalization layer
("bn", "ln", "in", "gn", "sn"), which is how `lamina tsc --ablate-norm` compares them.
"""

from __future__ import annotations

import math

from lamina import layers
from lamina.models import Model


def _norm(kind, name, channels):
    # Group norm needs groups dividing the channel count; 32 groups (Wu & He's default) where
    # they divide it, else the largest power of two that does.
    kwargs = {"groups": math.gcd(32, channels)} if kind == "gn" else {}
    return layers.make_norm(kind, name=name, **kwargs)


def _conv_norm_relu(h, filters, kernel, norm, name, kernel_initializer="glorot_uniform"):
    h = layers.Conv1D(filters, kernel, padding="same", kernel_initializer=kernel_initializer,
                      name=f"{name}_conv")(h)
    h = _norm(norm, f"{name}_norm", filters)(h)
    return layers.Activation("relu", name=f"{name}_relu")(h)


def fcn(input_shape, num_classes, norm="bn") -> Model:
    """Fully convolutional network: three Conv1D(128/8, 256/5, 128/3) + norm + ReLU blocks,
    global average pooling, softmax."""
    inp = layers.Input(input_shape, name="series")
    h = inp
    for i, (filters, kernel) in enumerate(((128, 8), (256, 5), (128, 3)), 1):
        h = _conv_norm_relu(h, filters, kernel, norm, f"block{i}")
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(h), name="fcn")


def resnet(input_shape, num_classes, norm="bn") -> Model:
    """Residual network: three blocks of 64, 128, 128 filters (Conv 8/5/3 + norm, ReLU between),
    each with a shortcut (Conv1D(1) + norm where the channel count changes, else norm alone)."""
    inp = layers.Input(input_shape, name="series")
    h, channels = inp, input_shape[-1]
    for b, filters in enumerate((64, 128, 128), 1):
        y = _conv_norm_relu(h, filters, 8, norm, f"res{b}a")
        y = _conv_norm_relu(y, filters, 5, norm, f"res{b}b")
        y = layers.Conv1D(filters, 3, padding="same", name=f"res{b}c_conv")(y)
        y = _norm(norm, f"res{b}c_norm", filters)(y)
        shortcut = h
        if channels != filters:
            shortcut = layers.Conv1D(filters, 1, padding="same", name=f"res{b}_shortcut_conv")(h)
        shortcut = _norm(norm, f"res{b}_shortcut_norm", filters)(shortcut)
        h = layers.Activation("relu", name=f"res{b}_out")(layers.Add(name=f"res{b}_add")([y, shortcut]))
        channels = filters
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(h), name="resnet")


def mlp(input_shape, num_classes, norm=None) -> Model:
    """Multilayer perceptron: Flatten, then Dropout(0.1), three Dense(500, relu) each followed by
    dropout 0.2, 0.2, 0.3, and softmax. The paper uses no normalization; `norm` adds one after
    each hidden Dense for the ablation."""
    inp = layers.Input(input_shape, name="series")
    h = layers.Dropout(0.1, name="drop0")(layers.Flatten(name="flatten")(inp))
    for i, rate in enumerate((0.2, 0.2, 0.3), 1):
        h = layers.Dense(500, activation=None if norm else "relu", name=f"dense{i}")(h)
        if norm:
            h = layers.Activation("relu", name=f"relu{i}")(_norm(norm, f"norm{i}", 500)(h))
        h = layers.Dropout(rate, name=f"drop{i}")(h)
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(h), name="mlp")


def lstm_fcn(input_shape, num_classes, norm="bn", cells=8) -> Model:
    """LSTM-FCN: the FCN branch (he_uniform kernels) beside an LSTM that reads the dimension-
    shuffled series (the whole series as one step of `length` features), with Dropout(0.8)."""
    inp = layers.Input(input_shape, name="series")
    h = inp
    for i, (filters, kernel) in enumerate(((128, 8), (256, 5), (128, 3)), 1):
        h = _conv_norm_relu(h, filters, kernel, norm, f"block{i}", kernel_initializer="he_uniform")
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    r = layers.Permute((2, 1), name="shuffle")(inp)
    r = layers.Dropout(0.8, name="lstm_dropout")(layers.LSTM(cells, name="lstm")(r))
    merged = layers.Concatenate(name="merge")([r, h])
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(merged),
                 name="lstm_fcn")


MODELS = {"fcn": fcn, "resnet": resnet, "mlp": mlp, "lstm_fcn": lstm_fcn}

