"""Keras import: models built with Keras 3 in the test, saved as .keras (and legacy .h5), loaded by
lamina, must predict what Keras predicts (atol 1e-5), for every layer type lamina shares with Keras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from keras import layers as K

import lamina
from lamina.saving import SavingError

RNG = np.random.default_rng(7)


def _x(*shape):
    return RNG.normal(size=(3, *shape)).astype("float32")


def _dense_activations():
    inp = keras.Input((6,))
    norm = K.Normalization()
    norm.adapt(RNG.normal(2.0, 3.0, size=(20, 6)).astype("float32"))
    h = K.Dense(8, activation="relu", kernel_regularizer="l2")(norm(inp))
    h = K.LeakyReLU(negative_slope=0.2)(K.PReLU()(K.Dense(8)(h)))
    h = K.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.05)(K.ELU(alpha=0.5)(h))
    h = K.Activation("gelu")(K.Dropout(0.5)(h))
    return keras.Model(inp, K.Softmax()(K.Dense(4, use_bias=False)(h))), _x(6)


def _conv1d():
    inp = keras.Input((12, 3))
    h = K.Conv1D(4, 3, padding="same", dilation_rate=2, activation="relu")(inp)
    h = K.BatchNormalization(momentum=0.9, epsilon=1e-2)(h)
    h = K.MaxPooling1D(2)(K.Conv1D(6, 3, padding="causal", groups=2)(h))
    h = K.SeparableConv1D(4, 3, depth_multiplier=2, padding="same")(h)
    h = K.DepthwiseConv1D(2, depth_multiplier=2)(K.AveragePooling1D(2, strides=1)(h))
    h = K.Conv1DTranspose(3, 3, strides=2)(h)
    h = K.UpSampling1D(2)(K.Cropping1D((1, 2))(K.ZeroPadding1D(2)(K.SpatialDropout1D(0.3)(h))))
    out = K.Concatenate()([K.GlobalAveragePooling1D()(h), K.GlobalMaxPooling1D()(h)])
    return keras.Model(inp, out), _x(12, 3)


def _conv2d():
    inp = keras.Input((8, 8, 2))
    h = K.Conv2D(4, (3, 2), strides=(1, 2), padding="same")(inp)
    h = K.DepthwiseConv2D(2, depth_multiplier=2)(K.SpatialDropout2D(0.2)(h))
    h = K.SeparableConv2D(3, 2, padding="same")(K.MaxPooling2D((2, 1))(h))
    h = K.Conv2DTranspose(2, 3, strides=(2, 1), padding="same")(K.AveragePooling2D(1)(h))
    h = K.UpSampling2D((1, 2))(K.Cropping2D(((1, 0), (0, 1)))(K.ZeroPadding2D(1)(h)))
    out = K.Concatenate()([K.GlobalAveragePooling2D()(h), K.GlobalMaxPooling2D()(h),
                           K.Flatten()(K.BatchNormalization()(h))])
    return keras.Model(inp, out), _x(8, 8, 2)


def _conv3d():
    inp = keras.Input((4, 4, 4, 1))
    h = K.Conv3D(2, 2, padding="same")(inp)
    h = K.Conv3DTranspose(2, 2, strides=2)(K.MaxPooling3D(2)(K.SpatialDropout3D(0.1)(h)))
    h = K.UpSampling3D(1)(K.Cropping3D(1)(K.ZeroPadding3D(1)(K.AveragePooling3D(1)(h))))
    return keras.Model(inp, K.Add()([K.GlobalAveragePooling3D()(h), K.GlobalMaxPooling3D()(h)])), \
        _x(4, 4, 4, 1)


def _recurrent():
    inp = keras.Input((5, 3))
    h = K.LSTM(4, return_sequences=True)(K.Masking(0.0)(inp))
    h = K.GRU(3, return_sequences=True, go_backwards=True)(h)
    h2 = K.GRU(2, reset_after=False, return_sequences=True)(h)
    h = K.Bidirectional(K.SimpleRNN(2, return_sequences=True), merge_mode="sum")(h)
    h = K.Bidirectional(K.LSTM(3))(K.Concatenate()([h, h2]))
    return keras.Model(inp, h), _x(5, 3)


def _embedding():
    inp = keras.Input((5,), dtype="int32")
    h = K.LSTM(3)(K.Embedding(7, 4, mask_zero=True)(inp))
    return keras.Model(inp, K.Dense(2)(h)), np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 1],
                                                      [2, 2, 2, 0, 0]], dtype="int32")


def _merge():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    parts = [K.Add()([a, b]), K.Subtract()([a, b]), K.Multiply()([a, b]), K.Average()([a, b]),
             K.Maximum()([a, b]), K.Minimum()([a, b]), K.Dot(axes=1, normalize=True)([a, b])]
    return keras.Model([a, b], K.Concatenate(axis=-1)(parts)), [_x(4), _x(4)]


def _reshaping_normalization():
    inp = keras.Input((6, 4))
    h = K.Permute((2, 1))(K.LayerNormalization(epsilon=1e-2)(inp))
    h = K.Reshape((3, 8))(K.GroupNormalization(groups=2)(h))
    h = K.RepeatVector(2)(K.Flatten()(h))
    h = K.GaussianDropout(0.3)(K.GaussianNoise(0.5)(K.AlphaDropout(0.2)(h)))
    return keras.Model(inp, h), _x(6, 4)


def _nested_shared_multi_output():
    inner = keras.Sequential([keras.Input((4,)), K.Dense(5, activation="tanh"), K.Dense(4)],
                             name="inner")
    ia = keras.Input((4,), name="ia")
    mid = keras.Model(ia, K.Dense(4, name="mid_dense")(inner(ia)), name="mid")
    x = keras.Input((4,), name="x")
    shared = K.Dense(4, name="shared")
    h = shared(shared(mid(x)))  # one layer called twice: node indices 0 and 1
    out_a = K.Dense(2, activation="softmax", name="out_a")(h)
    out_b = K.Dense(1, activation="sigmoid", name="out_b")(K.Dropout(0.5)(h, training=True))
    return keras.Model(x, [out_a, out_b]), _x(4)


def _sequential_without_input():
    model = keras.Sequential([K.Dense(5, activation="relu"), K.Dense(2)])
    model.build((None, 3))
    return model, _x(3)


def _attention_cells_preprocessing():
    inp = keras.Input((6, 4))
    h = K.MultiHeadAttention(2, 3)(inp, inp)
    h = K.Attention(use_scale=True)([h, inp])
    h = K.RNN(K.LSTMCell(3), return_sequences=True)(h)
    h = K.RNN(K.GRUCell(3), return_sequences=True)(h)
    h = K.RNN([K.GRUCell(3), K.LSTMCell(3)], return_sequences=True)(h)  # StackedRNNCells
    img = K.Reshape((6, 2, 1))(K.RNN(K.SimpleRNNCell(2), return_sequences=True)(h))
    img = K.CenterCrop(6, 4)(K.Resizing(8, 4)(K.Rescaling(0.5, offset=0.1)(img)))
    img = K.RandomZoom(0.2)(K.RandomRotation(0.1)(K.RandomFlip()(img)))  # identity at inference
    return keras.Model(inp, K.Flatten()(img)), _x(6, 4)


CASES = {f.__name__.lstrip("_"): f for f in (
    _dense_activations, _conv1d, _conv2d, _conv3d, _recurrent, _embedding, _merge,
    _reshaping_normalization, _nested_shared_multi_output, _sequential_without_input,
    _attention_cells_preprocessing)}


def _randomize(model):
    """Weights away from their initial values (BN statistics too), so every array matters."""
    for w in model.weights:
        low = 0.5 if "variance" in w.path else -0.5
        w.assign(RNG.uniform(low, 1.0, size=tuple(w.shape)).astype(w.dtype))


def _as_list(out):
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _assert_same_predictions(keras_model, lamina_model, x):
    expected = _as_list(keras_model.predict(x, verbose=0))
    got = _as_list(lamina_model.predict(x, verbose=0))
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each case built, randomized and saved once, as .keras and as legacy .h5."""
    folder = tmp_path_factory.mktemp("keras_models")
    out = {}
    for name, build in CASES.items():
        keras.utils.clear_session()
        model, x = build()
        _randomize(model)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        model.save(folder / f"{name}.keras")
        model.save(folder / f"{name}.h5")
        out[name] = (model, x, folder / name)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_keras_archive_predicts_as_keras(saved, case):
    keras_model, x, stem = saved[case]
    model = lamina.load_model(f"{stem}.keras")
    _assert_same_predictions(keras_model, model, x)
    assert model.compiled and isinstance(model.optimizer, lamina.optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(0.01)


@pytest.mark.parametrize("case", ["conv1d", "recurrent", "nested_shared_multi_output"])
def test_legacy_h5_predicts_as_keras(saved, case):
    keras_model, x, stem = saved[case]
    _assert_same_predictions(keras_model, lamina.load_model(f"{stem}.h5"), x)


def test_tf_keras_2_h5_config_format(saved, tmp_path):
    """tf.keras 2 wrote calls as [[layer, node, tensor, kwargs]] and inputs as batch_input_shape."""
    import h5py

    keras_model, x, stem = saved["merge"]
    path = tmp_path / "tf2.h5"
    with h5py.File(f"{stem}.h5", "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            src.copy(key, dst)
        config = json.loads(src.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                layer["config"]["batch_input_shape"] = layer["config"].pop("batch_shape")
            layer["inbound_nodes"] = [
                [arg["config"]["keras_history"] + [{}] for arg in _flat_args(node["args"])]
                for node in layer["inbound_nodes"]]
        for attr in ("keras_version", "backend"):
            dst.attrs[attr] = src.attrs[attr]
        dst.attrs["model_config"] = json.dumps(config)
    _assert_same_predictions(keras_model, lamina.load_model(path), x)


def _flat_args(args):
    return [a for arg in args for a in (arg if isinstance(arg, list) else [arg])]


def test_load_weights_from_keras_files(saved, tmp_path):
    keras_model, x, stem = saved["conv1d"]
    fresh = lamina.load_model(f"{stem}.keras", compile=False)
    for layer in fresh.layers:
        for w in layer.weights:
            with lamina_no_grad():
                w.zero_()
    fresh.load_weights(f"{stem}.keras")
    _assert_same_predictions(keras_model, fresh, x)
    keras_model.save_weights(tmp_path / "only.weights.h5")
    other = lamina.load_model(f"{stem}.keras", compile=False)
    for w in other.weights:
        with lamina_no_grad():
            w.zero_()
    other.load_weights(tmp_path / "only.weights.h5")
    _assert_same_predictions(keras_model, other, x)


def lamina_no_grad():
    import torch

    return torch.no_grad()


def test_every_shared_layer_type_is_covered(saved):
    """Each lamina layer class that Keras also has appears in one of the Keras models above."""
    from lamina.saving.registry import builtin_layers

    used = set()
    for model, _, _ in saved.values():
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            used.add(type(layer).__name__)
            stack += list(getattr(layer, "layers", []))
            for attr in ("forward_layer", "backward_layer", "cell"):
                if hasattr(layer, attr):
                    used.add(type(getattr(layer, attr)).__name__)
    shared = {name for name, cls in builtin_layers().items()
              if hasattr(K, name) and getattr(K, name).__name__ == name and name not in (
                  "Layer", "Lambda", "TorchModuleWrapper", "InputLayer")}
    assert not shared - used, f"no Keras import test covers {sorted(shared - used)}"


def _write_keras_archive(path, config):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", b"")


@pytest.mark.parametrize("layer, needle", [
    ({"class_name": "Lambda", "config": {"name": "lam", "function": "..."}}, "Lambda layer"),
    ({"class_name": "MyBlock", "registered_name": "Custom>MyBlock", "config": {"name": "b"}},
     "Custom>MyBlock"),
    ({"class_name": "TextVectorization", "config": {"name": "tv"}}, "TextVectorization"),
    ({"class_name": "Dense", "config": {"name": "d", "units": 2, "kernel_constraint": {
        "class_name": "MaxNorm", "config": {"max_value": 2}}}}, "MaxNorm"),
])
def test_unsupported_keras_layers_are_named(tmp_path, layer, needle):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 3], "name": "in"}}, layer]}}
    path = tmp_path / "bad.keras"
    _write_keras_archive(path, config)
    with pytest.raises(SavingError, match=needle):
        lamina.load_model(path)


def test_keras_import_needs_neither_keras_nor_tensorflow(saved):
    keras_model, x, stem = saved["recurrent"]
    expected = keras_model.predict(x, verbose=0)
    code = (
        "import sys, numpy as np\n"
        "sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
        "import lamina\n"
        f"out = lamina.load_model({str(stem) + '.keras'!r}).predict(np.load(sys.argv[1]), verbose=0)\n"
        "np.save(sys.argv[2], out)\n"
        "assert 'keras' not in [m.split('.')[0] for m, v in sys.modules.items() if v is not None]\n"
    )
    x_path, out_path = f"{stem}_x.npy", f"{stem}_out.npy"
    np.save(x_path, x)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    subprocess.run([sys.executable, "-c", code, x_path, out_path], check=True, env=env, timeout=120)
    np.testing.assert_allclose(np.load(out_path), expected, atol=1e-5, rtol=1e-5)
