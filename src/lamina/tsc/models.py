"""The deep classifiers for time series, built from the note's layers.

- `fcn`, `resnet`, `mlp`: Wang, Yan & Oates (2017), as re-run by Ismail Fawaz et al. (2019).
- `lstm_fcn`: Karim et al. (2017).
- `inception` / `inception_time`: Ismail Fawaz et al. (2020); `h_inception` / `h_inception_time`
  add the hand-crafted filters of Ismail-Fawaz et al. (2022); `lite` / `lite_time`: Ismail-Fawaz
  et al. (2023). The *_time models are ensembles of five networks (`lamina.models.Ensemble`).

Each takes the input shape (length, channels) and the number of classes and returns a compiled-
ready `lamina.Model` ending in a softmax. `norm=` swaps the normalization layer ("bn", "ln",
"in", "gn", "sn"), which is how `lamina tsc --ablate-norm` compares them.

`masked=True` (for unequal-length data, which `load_ucr` zero-pads at the end) makes a
convolutional model ignore the padding: the steps after a series' last nonzero step are set back
to zero before every convolution (to -inf before a max-pooling) and left out of the global
average, so that in inference a padded series gets the output it gets alone. (Batch statistics
in training still count the padded steps.) The MLP and the LSTM of LSTM-FCN need nothing: they
see the padding as zero inputs, which add nothing to their first weighted sums.
"""

from __future__ import annotations

import math

import numpy as np

from lamina import initializers, layers, ops
from lamina.models import Ensemble, Model


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


def _valid_steps(series):
    """(batch, steps) booleans: False on the end padding, the steps after a series' last step
    with a nonzero value (a zero step inside a series stays valid)."""
    nonzero = ops.cast(ops.any(ops.not_equal(series, 0.0), axis=-1), "float32")
    return ops.flip(ops.cumsum(ops.flip(nonzero, axis=1), axis=1), axis=1) > 0


def _fill_padding(h, valid, value=0.0):
    """`h` with its padded steps set to `value`; `h` itself when the model is not masked."""
    return h if valid is None else ops.where(ops.expand_dims(valid, -1), h, value)


def _classify(h, valid, num_classes, inp, name) -> Model:
    h = layers.GlobalAveragePooling1D(name="gap")(h, mask=valid)
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(h), name=name)


def fcn(input_shape, num_classes, norm="bn", masked=False) -> Model:
    """Fully convolutional network: three Conv1D(128/8, 256/5, 128/3) + norm + ReLU blocks,
    global average pooling, softmax."""
    inp = layers.Input(input_shape, name="series")
    valid = _valid_steps(inp) if masked else None
    h = inp
    for i, (filters, kernel) in enumerate(((128, 8), (256, 5), (128, 3)), 1):
        h = _fill_padding(_conv_norm_relu(h, filters, kernel, norm, f"block{i}"), valid)
    return _classify(h, valid, num_classes, inp, "fcn")


def resnet(input_shape, num_classes, norm="bn", masked=False) -> Model:
    """Residual network: three blocks of 64, 128, 128 filters (Conv 8/5/3 + norm, ReLU between),
    each with a shortcut (Conv1D(1) + norm where the channel count changes, else norm alone)."""
    inp = layers.Input(input_shape, name="series")
    valid = _valid_steps(inp) if masked else None
    h, channels = inp, input_shape[-1]
    for b, filters in enumerate((64, 128, 128), 1):
        y = _fill_padding(_conv_norm_relu(h, filters, 8, norm, f"res{b}a"), valid)
        y = _fill_padding(_conv_norm_relu(y, filters, 5, norm, f"res{b}b"), valid)
        y = layers.Conv1D(filters, 3, padding="same", name=f"res{b}c_conv")(y)
        y = _norm(norm, f"res{b}c_norm", filters)(y)
        shortcut = h
        if channels != filters:
            shortcut = layers.Conv1D(filters, 1, padding="same", name=f"res{b}_shortcut_conv")(h)
        shortcut = _norm(norm, f"res{b}_shortcut_norm", filters)(shortcut)
        h = layers.Activation("relu", name=f"res{b}_out")(layers.Add(name=f"res{b}_add")([y, shortcut]))
        h = _fill_padding(h, valid)
        channels = filters
    return _classify(h, valid, num_classes, inp, "resnet")


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


def lstm_fcn(input_shape, num_classes, norm="bn", cells=8, masked=False) -> Model:
    """LSTM-FCN: the FCN branch (he_uniform kernels) beside an LSTM that reads the dimension-
    shuffled series (the whole series as one step of `length` features), with Dropout(0.8)."""
    inp = layers.Input(input_shape, name="series")
    valid = _valid_steps(inp) if masked else None
    h = inp
    for i, (filters, kernel) in enumerate(((128, 8), (256, 5), (128, 3)), 1):
        h = _conv_norm_relu(h, filters, kernel, norm, f"block{i}", kernel_initializer="he_uniform")
        h = _fill_padding(h, valid)
    h = layers.GlobalAveragePooling1D(name="gap")(h, mask=valid)
    r = layers.Permute((2, 1), name="shuffle")(inp)
    r = layers.Dropout(0.8, name="lstm_dropout")(layers.LSTM(cells, name="lstm")(r))
    merged = layers.Concatenate(name="merge")([r, h])
    return Model(inp, layers.Dense(num_classes, activation="softmax", name="classes")(merged),
                 name="lstm_fcn")


# The 17 fixed filters of Ismail-Fawaz et al. (2022): increasing- and decreasing-trend detectors
# (alternating -1/+1) of lengths 2..64 and peak detectors (a squared-ramp bump, negative, twice
# positive, negative) of lengths 1.5 x 4..64. Facts from the paper and aeon's LITENetwork.
_TREND_LENGTHS = (2, 4, 8, 16, 32, 64)


def _peak_filter(length):
    ramp = np.linspace(0.0, 1.0, length // 4 + 1)[1:] ** 2
    bump = np.concatenate([ramp, ramp[::-1]])
    return np.concatenate([-bump, 2 * bump, -bump])


HAND_CRAFTED_FILTERS = {
    **{f"increase{k}": np.where(np.arange(k) % 2 == 0, -1.0, 1.0) for k in _TREND_LENGTHS},
    **{f"decrease{k}": np.where(np.arange(k) % 2 == 0, 1.0, -1.0) for k in _TREND_LENGTHS},
    **{f"peak{k}": _peak_filter(k) for k in _TREND_LENGTHS[1:]},
}


def _hand_crafted(h, name):
    """The fixed filters as non-trainable Conv1D(1) layers (each sums its filter over every
    input channel), concatenated, then ReLU."""
    outs = [layers.Conv1D(1, len(f), padding="same", use_bias=False, trainable=False,
                          kernel_initializer=initializers.Constant(f.reshape(-1, 1, 1)),
                          name=f"{name}_{key}")(h)
            for key, f in HAND_CRAFTED_FILTERS.items()]
    return layers.Activation("relu", name=f"{name}_relu")(layers.Concatenate(name=f"{name}_concat")(outs))


# Kernel sizes 40, 20, 10: the reference code's default kernel_size=41 minus one, halved twice
# (hfawaz/InceptionTime classifiers/inception.py), as aeon's InceptionNetwork and LITE use.
_INCEPTION_KERNELS = (40, 20, 10)


def _inception_module(h, valid, norm, name, hand_crafted=False, filters=32):
    """Bottleneck Conv1D(32, 1) (when the input has several channels), three Conv1D(32) of the
    kernel sizes, a MaxPooling1D(3) branch with a Conv1D(32, 1), optionally the fixed filters;
    concatenated, norm, ReLU. No convolution has a bias."""
    bottleneck = h if h.shape[-1] == 1 else layers.Conv1D(
        filters, 1, padding="same", use_bias=False, name=f"{name}_bottleneck")(h)
    branches = [layers.Conv1D(filters, k, padding="same", use_bias=False, name=f"{name}_conv{k}")(bottleneck)
                for k in _INCEPTION_KERNELS]
    pooled = layers.MaxPooling1D(3, strides=1, padding="same", name=f"{name}_pool")(
        _fill_padding(h, valid, -math.inf))
    branches.append(layers.Conv1D(filters, 1, padding="same", use_bias=False, name=f"{name}_pool_conv")(
        _fill_padding(pooled, valid)))
    if hand_crafted:
        branches.append(_hand_crafted(h, f"{name}_hand_crafted"))
    h = layers.Concatenate(name=f"{name}_concat")(branches)
    h = _norm(norm, f"{name}_norm", h.shape[-1])(h)
    return _fill_padding(layers.Activation("relu", name=f"{name}_relu")(h), valid)


def inception(input_shape, num_classes, norm="bn", masked=False, hand_crafted=False, depth=6,
              name="inception") -> Model:
    """One Inception network of InceptionTime: `depth` Inception modules, a residual shortcut
    (Conv1D 1x1 without bias + norm, add, ReLU) around every three, global average pooling,
    softmax. `hand_crafted=True` adds the fixed filters to the first module (H-Inception)."""
    inp = layers.Input(input_shape, name="series")
    valid = _valid_steps(inp) if masked else None
    h = residual = inp
    for d in range(depth):
        h = _inception_module(h, valid, norm, f"module{d + 1}", hand_crafted=hand_crafted and d == 0)
        if d % 3 == 2:
            s = f"shortcut{d // 3 + 1}"
            shortcut = layers.Conv1D(h.shape[-1], 1, padding="same", use_bias=False,
                                     name=f"{s}_conv")(residual)
            shortcut = _norm(norm, f"{s}_norm", h.shape[-1])(shortcut)
            h = layers.Activation("relu", name=f"{s}_relu")(layers.Add(name=f"{s}_add")([shortcut, h]))
            h = residual = _fill_padding(h, valid)
    return _classify(h, valid, num_classes, inp, name)


def h_inception(input_shape, num_classes, norm="bn", masked=False, name="h_inception") -> Model:
    """H-Inception: the Inception network with the hand-crafted filters in its first module."""
    return inception(input_shape, num_classes, norm=norm, masked=masked, hand_crafted=True, name=name)


def lite(input_shape, num_classes, norm="bn", masked=False, filters=32, name="lite") -> Model:
    """LITE: multiplexed Conv1D(32) of kernel sizes 40/20/10 beside the hand-crafted filters,
    norm, ReLU; then two SeparableConv1D(32) of kernels 20 and 10 with dilation 2 and 4, each +
    norm + ReLU; global average pooling, softmax. No convolution has a bias."""
    inp = layers.Input(input_shape, name="series")
    valid = _valid_steps(inp) if masked else None
    branches = [layers.Conv1D(filters, k, padding="same", use_bias=False, name=f"multiplex_conv{k}")(inp)
                for k in _INCEPTION_KERNELS]
    h = layers.Concatenate(name="multiplex_concat")([*branches, _hand_crafted(inp, "hand_crafted")])
    h = layers.Activation("relu", name="multiplex_relu")(_norm(norm, "multiplex_norm", h.shape[-1])(h))
    h = _fill_padding(h, valid)
    for i, (kernel, dilation) in enumerate(((20, 2), (10, 4)), 1):
        h = layers.SeparableConv1D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False,
                                   name=f"separable{i}_conv")(h)
        h = _norm(norm, f"separable{i}_norm", filters)(h)
        h = _fill_padding(layers.Activation("relu", name=f"separable{i}_relu")(h), valid)
    return _classify(h, valid, num_classes, inp, name)


def _ensemble_of(network, name, doc):
    def build(input_shape, num_classes, norm="bn", masked=False, members=5) -> Ensemble:
        return Ensemble([network(input_shape, num_classes, norm=norm, masked=masked, name=f"{name}_{i}")
                         for i in range(1, members + 1)], name=name)

    build.__name__, build.__doc__ = name, doc
    return build


inception_time = _ensemble_of(inception, "inception_time",
                              "InceptionTime: an Ensemble of `members` (5) Inception networks.")
h_inception_time = _ensemble_of(h_inception, "h_inception_time",
                                "H-InceptionTime: an Ensemble of `members` (5) H-Inception networks.")
lite_time = _ensemble_of(lite, "lite_time", "LITETime: an Ensemble of `members` (5) LITE networks.")

MODELS = {"fcn": fcn, "resnet": resnet, "mlp": mlp, "lstm_fcn": lstm_fcn,
          "inception": inception, "inceptiontime": inception_time,
          "h-inception": h_inception, "h-inceptiontime": h_inception_time,
          "lite": lite, "litetime": lite_time}

