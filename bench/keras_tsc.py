"""InceptionTime's and LITE's networks written in Keras 3 as aeon builds them (aeon's
InceptionNetwork and LITENetwork, after hfawaz/InceptionTime and MSD-IRIMAS/LITE), on the backend
KERAS_BACKEND names: the peer of lamina.tsc's `inception` and `lite` in bench/tsc_speed.py, and
the oracle of their architecture in tests/tsc. Layer names are lamina's, so that weights copy
across by name.
"""

from __future__ import annotations

import numpy as np

KERNELS = (40, 20, 10)  # the reference code's kernel_size=41, minus one, halved twice
FILTERS = 32


def hand_crafted_kernels(channels):
    """name -> (length, channels, 1) kernel of the fixed filters, by the reference's formulas:
    trend filters flip the sign of every other tap; peak filters are six quarter-length pieces
    of a squared ramp."""
    kernels = {}
    for k in (2, 4, 8, 16, 32, 64):
        taps = np.ones((k, channels, 1))
        taps[np.arange(k) % 2 == 0] *= -1
        kernels[f"increase{k}"] = taps
    for k in (2, 4, 8, 16, 32, 64):
        taps = np.ones((k, channels, 1))
        taps[np.arange(k) % 2 == 1] *= -1
        kernels[f"decrease{k}"] = taps
    for k in (4, 8, 16, 32, 64):
        taps = np.zeros((k + k // 2, channels, 1))
        left = (np.linspace(0, 1, k // 4 + 1)[1:] ** 2).reshape(-1, 1, 1)
        right = left[::-1]
        q = k // 4
        taps[0:q], taps[q:2 * q], taps[2 * q:3 * q] = -left, -right, 2 * left
        taps[3 * q:4 * q], taps[4 * q:5 * q], taps[5 * q:] = 2 * right, -left, -right
        kernels[f"peak{k}"] = taps
    return kernels


def _hand_crafted(keras, h, name):
    L = keras.layers
    outs = [L.Conv1D(1, len(w), padding="same", use_bias=False, trainable=False,
                     kernel_initializer=keras.initializers.Constant(w), name=f"{name}_{key}")(h)
            for key, w in hand_crafted_kernels(h.shape[-1]).items()]
    return L.Activation("relu", name=f"{name}_relu")(L.Concatenate(name=f"{name}_concat")(outs))


def inception(keras, input_shape, classes, hand_crafted=False, depth=6):
    """One Inception network (H-Inception with `hand_crafted`)."""
    L = keras.layers
    inp = L.Input(input_shape)
    x = residual = inp
    for d in range(depth):
        name = f"module{d + 1}"
        branch_in = x if x.shape[-1] == 1 else L.Conv1D(FILTERS, 1, padding="same", use_bias=False,
                                                        name=f"{name}_bottleneck")(x)
        branches = [L.Conv1D(FILTERS, k, padding="same", use_bias=False, name=f"{name}_conv{k}")(branch_in)
                    for k in KERNELS]
        pooled = L.MaxPooling1D(3, strides=1, padding="same")(x)
        branches.append(L.Conv1D(FILTERS, 1, padding="same", use_bias=False,
                                 name=f"{name}_pool_conv")(pooled))
        if hand_crafted and d == 0:
            branches.append(_hand_crafted(keras, x, f"{name}_hand_crafted"))
        x = L.Activation("relu")(L.BatchNormalization(name=f"{name}_norm")(L.Concatenate()(branches)))
        if d % 3 == 2:
            s = f"shortcut{d // 3 + 1}"
            shortcut = L.Conv1D(x.shape[-1], 1, padding="same", use_bias=False, name=f"{s}_conv")(residual)
            shortcut = L.BatchNormalization(name=f"{s}_norm")(shortcut)
            x = residual = L.Activation("relu")(L.Add()([shortcut, x]))
    out = L.Dense(classes, activation="softmax", name="classes")(L.GlobalAveragePooling1D()(x))
    return keras.Model(inp, out)


def lite(keras, input_shape, classes):
    """One LITE network."""
    L = keras.layers
    inp = L.Input(input_shape)
    branches = [L.Conv1D(FILTERS, k, padding="same", use_bias=False, name=f"multiplex_conv{k}")(inp)
                for k in KERNELS]
    x = L.Concatenate()([*branches, _hand_crafted(keras, inp, "hand_crafted")])
    x = L.Activation("relu")(L.BatchNormalization(name="multiplex_norm")(x))
    for i, (kernel, dilation) in enumerate(((20, 2), (10, 4)), 1):
        x = L.SeparableConv1D(FILTERS, kernel, padding="same", dilation_rate=dilation, use_bias=False,
                              name=f"separable{i}_conv")(x)
        x = L.Activation("relu")(L.BatchNormalization(name=f"separable{i}_norm")(x))
    out = L.Dense(classes, activation="softmax", name="classes")(L.GlobalAveragePooling1D()(x))
    return keras.Model(inp, out)


BUILDERS = {"inception": inception, "lite": lite,
            "h-inception": lambda keras, shape, classes: inception(keras, shape, classes, hand_crafted=True)}
