"""Keras export: models built in lamina, saved as .keras or .weights.h5, opened by Keras 3 itself
(torch backend), must predict what lamina predicts (atol 1e-5); and Keras' .weights.h5 files go
into lamina models. Keras is the oracle: it reads the files with its own loader.
"""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

import lamina
from lamina import layers
from lamina.saving import SavingError, keras_layout, registry

RNG = np.random.default_rng(11)


def _x(*shape):
    return RNG.normal(size=(3, *shape)).astype("float32")


def _randomize(model):
    """Random weights everywhere (variances positive), so that every array's place matters."""
    for layer in model.layers:
        if isinstance(layer, lamina.Model):
            _randomize(layer)
        elif layer.get_weights():
            layer.set_weights([np.abs(RNG.normal(size=w.shape)).astype(w.dtype) + 0.1
                               for w in layer.get_weights()])
    return model


def _sequential_conv1d():
    return lamina.Sequential([
        layers.Input((12, 3)), layers.Conv1D(4, 3, padding="same"), layers.BatchNormalization(),
        layers.Activation("relu"), layers.MaxPooling1D(2), layers.Dropout(0.3),
        layers.Conv1D(5, 3, padding="causal", dilation_rate=2), layers.GlobalAveragePooling1D(),
        layers.Dense(2, activation="softmax")]), _x(12, 3)


def _conv2d():
    inp = layers.Input((8, 8, 2))
    h = layers.Conv2D(3, (3, 3), strides=2, padding="same", activation="relu")(inp)
    h = layers.AveragePooling2D(2)(layers.MaxPooling2D((2, 2), strides=1, padding="same")(h))
    h = layers.GroupNormalization(groups=3)(h)
    out = layers.Dense(3)(layers.Flatten()(h))
    return lamina.Model(inp, out), _x(8, 8, 2)


def _recurrent():
    inp = layers.Input((7,), dtype="int64")
    h = layers.Embedding(20, 6)(inp)
    h = layers.LSTM(5, return_sequences=True)(h)
    h = layers.Bidirectional(layers.GRU(4, return_sequences=True))(h)
    h = layers.Bidirectional(layers.LSTM(3), merge_mode="sum")(h)
    h = layers.LayerNormalization()(layers.SimpleRNN(3)(layers.RepeatVector(2)(h)))
    return lamina.Model(inp, layers.Dense(2)(h)), RNG.integers(0, 20, size=(3, 7))


def _multi_io_nested():
    inner = lamina.Sequential([layers.Input((4,)), layers.Dense(5, activation="tanh"),
                               layers.Dropout(0.2), layers.Dense(4)], name="inner")
    a_in = layers.Input((4,), name="a")
    sub_out = layers.Dense(4, activation="relu")(a_in)
    sub = lamina.Model(a_in, sub_out, name="sub")
    x1, x2 = layers.Input((4,), name="x1"), layers.Input((4,), name="x2")
    h1, h2 = inner(x1), sub(x2)
    merged = [layers.Add()([h1, h2]), layers.Subtract()([h1, h2]), layers.Multiply()([h1, h2]),
              layers.Average()([h1, h2]), layers.Maximum()([h1, h2])]
    cat = layers.Concatenate()(merged)
    out1 = layers.Dense(3, name="head_a")(cat)
    out2 = layers.Dense(1, activation="sigmoid", name="head_b")(inner(h2))
    return lamina.Model([x1, x2], [out1, out2]), [_x(4), _x(4)]


MODELS = {"sequential_conv1d": _sequential_conv1d, "conv2d": _conv2d, "recurrent": _recurrent,
          "multi_io_nested": _multi_io_nested}


def _same(a, b):
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_opens_lamina_keras_archive(name, tmp_path):
    model, x = MODELS[name]()
    _randomize(model)
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    _same(restored.predict(x, verbose=0), model.predict(x))
    assert [w.shape for w in restored.get_weights()] == [w.shape for w in model.get_weights()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weights_h5_both_ways(name, tmp_path):
    model, x = MODELS[name]()
    _randomize(model)
    model.save(tmp_path / "m.keras")
    keras_model = keras.models.clone_model(keras.saving.load_model(tmp_path / "m.keras"))
    # lamina -> Keras: Keras' load_weights reads lamina's file into a freshly initialised model.
    model.save_weights(tmp_path / "l.weights.h5")
    keras_model.load_weights(tmp_path / "l.weights.h5")
    _same(keras_model.predict(x, verbose=0), model.predict(x))
    # Keras -> lamina: new Keras weights, written by Keras, read into lamina's model.
    for layer in keras_model.layers:
        if layer.get_weights():
            layer.set_weights([w + 0.5 for w in layer.get_weights()])
    keras_model.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    _same(model.predict(x), keras_model.predict(x, verbose=0))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lamina_reloads_its_keras_archive(name, tmp_path):
    model, x = MODELS[name]()
    _randomize(model)
    model.save(tmp_path / "m.keras")
    for load in (lamina.load_model, lamina.models.load_model, lamina.saving.load_model):
        _same(load(tmp_path / "m.keras").predict(x), model.predict(x))


def test_archive_layout_is_keras(tmp_path):
    model, _ = _sequential_conv1d()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
        assert json.loads(zf.read("metadata.json"))["keras_version"].startswith("3.")
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert all(e["module"] == "keras.layers" for e in config["config"]["layers"])


def test_compile_settings_reach_keras(tmp_path):
    model, x = _sequential_conv1d()
    model.compile(optimizer=lamina.optimizers.Adam(learning_rate=0.003),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="optimizer"):  # Keras' own wording: fresh slots
        restored = keras.saving.load_model(tmp_path / "m.keras")
    assert type(restored.optimizer).__name__ == "Adam"
    assert float(restored.optimizer.learning_rate) == pytest.approx(0.003)
    assert restored.loss == "sparse_categorical_crossentropy"  # Keras trains it as compiled
    logs = restored.evaluate(x, np.array([0, 1, 0]), verbose=0, return_dict=True)
    assert {"loss", "accuracy"} <= set(logs)


# ----------------------------------------------------------------------------- lamina-only layers
def _lamina_only():
    inp, ids = layers.Input((6, 4)), layers.Input((), dtype="int64")
    h = layers.SwitchableNormalization()(inp)
    h = layers.InstanceNormalization()(h)
    h = layers.ConditionalBatchNormalization(num_classes=3)([h, ids])
    return lamina.Model([inp, ids], layers.Dense(2)(layers.Flatten()(h))), \
        [_x(6, 4), np.array([0, 2, 1])]


def test_lamina_only_layers_round_trip_and_keras_names_them(tmp_path):
    model, x = _lamina_only()
    _randomize(model)
    path = tmp_path / "m.keras"
    with pytest.warns(UserWarning, match="lamina>ConditionalBatchNormalization, lamina>Instance"):
        model.save(path)
    _same(lamina.load_model(path).predict(x), model.predict(x))
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    names = {e["class_name"]: e["registered_name"] for e in config["config"]["layers"]}
    assert names["SwitchableNormalization"] == "lamina>SwitchableNormalization"
    with pytest.raises(TypeError, match="Could not locate class 'SwitchableNormalization'"):
        keras.saving.load_model(path)


def test_keras_opens_lamina_only_layers_once_a_twin_is_registered(tmp_path):
    """The documented way for a Keras user: register a Keras class under the lamina name."""
    model = _randomize(lamina.Sequential([layers.Input((6, 4)), layers.InstanceNormalization()]))
    with pytest.warns(UserWarning, match="lamina>InstanceNormalization"):
        model.save(tmp_path / "m.keras")

    class InstanceNormalization(keras.layers.GroupNormalization):  # per-channel groups
        def __init__(self, **kwargs):
            super().__init__(groups=-1, **kwargs)

    with keras.saving.custom_object_scope(
            {"lamina>InstanceNormalization": InstanceNormalization}):
        restored = keras.saving.load_model(tmp_path / "m.keras")
    x = _x(6, 4)
    _same(restored.predict(x, verbose=0), model.predict(x))


def test_lamina_only_list_is_what_keras_lacks():
    bases = {"AffineNormalization", "BaseConv", "BaseGlobalPooling", "BasePooling", "Conv",
             "ConvTranspose", "DepthwiseConv", "SeparableConv", "Functional", "GlobalAveragePooling",
             "GlobalMaxPooling", "MaxPooling", "AveragePooling", "Recurrent", "Model", "Sequential"}
    lacking = {name for name in registry.builtin_layers() if not hasattr(keras.layers, name)}
    # OpLayer among them: an op node is written as Keras' Operation node when Keras has the op
    # (test_keras_ops_roundtrip.py), as "lamina>OpLayer" when it does not.
    assert lacking - bases == set(keras_layout.LAMINA_ONLY)


# ----------------------------------------------------------------------------- suffixes
def test_suffix_picks_the_format(tmp_path):
    model, x = _sequential_conv1d()
    for name in ("m.keras", "m.lamina"):
        model.save(tmp_path / name)
        _same(lamina.load_model(tmp_path / name).predict(x), model.predict(x))
    for name in ("w.weights.h5", "w.safetensors"):
        model.save_weights(tmp_path / name)
        fresh, _ = _sequential_conv1d()  # other weights until the file's are loaded
        fresh.load_weights(tmp_path / name)
        _same(fresh.predict(x), model.predict(x))
    with pytest.raises(SavingError, match=r"\.keras.*legacy \.h5"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(SavingError, match=r"must end with \.lamina or \.keras.*m\.txt"):
        model.save(tmp_path / "m.txt")
    with pytest.raises(SavingError, match=r"\.weights\.h5.*w\.h5"):
        model.save_weights(tmp_path / "w.h5")


def test_checkpoint_writes_keras_formats(tmp_path):
    model, x = _sequential_conv1d()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.array([0, 1, 1])
    callbacks = [lamina.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss"),
                 lamina.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"),
                                                  save_weights_only=True)]
    model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    with pytest.warns(UserWarning, match="optimizer"):
        restored = keras.saving.load_model(tmp_path / "best.keras")
    _same(restored.predict(x, verbose=0), model.predict(x))
    restored.set_weights([w * 0 for w in restored.get_weights()])
    restored.load_weights(tmp_path / "w.weights.h5")
    _same(restored.predict(x, verbose=0), model.predict(x))
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        lamina.callbacks.ModelCheckpoint(str(tmp_path / "w.keras"), save_weights_only=True)


# ----------------------------------------------------------------------------- one layer at a time
SINGLE_LAYERS = {
    "conv2d_transpose": ((6, 6, 2), lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same")),
    "conv3d": ((4, 4, 4, 2), lambda: layers.Conv3D(3, 2)),
    "separable_conv1d": ((6, 5), lambda: layers.SeparableConv1D(4, 3, depth_multiplier=2)),
    "depthwise_conv2d": ((6, 6, 2), lambda: layers.DepthwiseConv2D(3, depth_multiplier=2)),
    "grouped_conv2d": ((6, 6, 2), lambda: layers.Conv2D(4, 3, groups=2, activation="relu")),
    "prelu": ((6, 5), lambda: layers.PReLU()),
    "permute": ((6, 5), lambda: layers.Permute((2, 1))),
    "cropping1d": ((6, 5), lambda: layers.Cropping1D((1, 2))),
    "upsampling1d": ((6, 5), lambda: layers.UpSampling1D(2)),
    "spatial_dropout1d": ((6, 5), lambda: layers.SpatialDropout1D(0.2)),
    "masking": ((6, 5), lambda: layers.Masking(0.0)),
    "layer_norm_two_axes": ((6, 5), lambda: layers.LayerNormalization(axis=[1, 2])),
    "gru_reset_before": ((6, 5), lambda: layers.GRU(3, reset_after=False)),
    "lstm_no_bias_backwards": ((6, 5), lambda: layers.LSTM(3, use_bias=False, go_backwards=True)),
    "bidirectional_ave": ((6, 5), lambda: layers.Bidirectional(layers.SimpleRNN(2), merge_mode="ave")),
    "dense_objects": ((5,), lambda: layers.Dense(
        3, kernel_initializer=lamina.initializers.RandomNormal(stddev=0.1),
        kernel_regularizer=lamina.regularizers.L1L2(0.1, 0.2))),
    "normalization": ((6,), lambda: layers.Normalization(mean=[1.0] * 6, variance=[2.0] * 6)),
}


@pytest.mark.parametrize("name", sorted(SINGLE_LAYERS))
def test_single_layer_models_open_in_keras(name, tmp_path):
    shape, make = SINGLE_LAYERS[name]
    model = _randomize(lamina.Sequential([layers.Input(shape), make()]))
    x = _x(*shape)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    _same(restored.predict(x, verbose=0), model.predict(x))
    restored.set_weights([w * 0 for w in restored.get_weights()])
    model.save_weights(tmp_path / "w.weights.h5")
    restored.load_weights(tmp_path / "w.weights.h5")
    _same(restored.predict(x, verbose=0), model.predict(x))


def test_weights_h5_load_is_all_or_nothing(tmp_path):
    def model(last):
        return lamina.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(last)])

    model(2).save_weights(tmp_path / "w.weights.h5")
    target = model(5)
    before = target.get_weights()
    with pytest.raises(SavingError, match=r"layer '.*' \(h5 group 'layers/dense_1'\)"):
        target.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)  # the first Dense, which matched, was not assigned


def test_compile_objects_reach_keras(tmp_path):
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer=lamina.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=lamina.losses.Huber(delta=2.0),
                  metrics=[lamina.metrics.MeanSquaredError()])
    model.save(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="optimizer"):
        restored = keras.saving.load_model(tmp_path / "m.keras")
    optimizer = restored.optimizer.get_config()
    assert (type(restored.optimizer).__name__, optimizer["momentum"], optimizer["nesterov"]) == \
        ("SGD", 0.9, True)
    assert float(restored.optimizer.learning_rate) == pytest.approx(0.1)
    assert type(restored.loss).__name__ == "Huber" and restored.loss.fn.__name__ == "huber"
    assert restored.loss._fn_kwargs == {"delta": 2.0}


def test_a_scheduled_learning_rate_reaches_keras(tmp_path):
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3)])
    schedule = lamina.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5)
    model.compile(optimizer=lamina.optimizers.Adam(schedule), loss="mse")
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    rate = restored.optimizer.get_config()["learning_rate"]
    assert rate["class_name"] == "ExponentialDecay"
    assert (rate["config"]["initial_learning_rate"], rate["config"]["decay_rate"]) == (0.01, 0.5)
