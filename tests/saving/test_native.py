"""The .lamina format: round trips are bitwise (predictions, and training continued with the saved
optimizer state), writes are atomic, and what cannot be saved is refused clearly."""

from __future__ import annotations

import os
import warnings
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

import lamina
from lamina import layers
from lamina.saving import SavingError, register_serializable


@register_serializable(package="tests")
class Scale(layers.Layer):
    """A registered custom layer with a weight and a constructor argument."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.add_weight("gain", (input_shape[-1],), "ones")

    def call(self, x):
        return x * self.gain * self.factor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register_serializable(package="tests")
class TwoTower(lamina.Model):
    """A registered subclassed model: its weights exist only after a call."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.left, self.right = layers.Dense(units), layers.Dense(units, activation="tanh")

    def call(self, x, training=None):
        return self.left(x) + self.right(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _sequential_with_input():
    return lamina.Sequential([layers.Input((6, 2)), layers.Conv1D(4, 3, padding="same"),
                              layers.BatchNormalization(), layers.Activation("relu"),
                              layers.LSTM(3, return_sequences=True), layers.Bidirectional(layers.GRU(2)),
                              layers.Dropout(0.3), layers.Dense(2, activation="softmax")]), (6, 2)


def _sequential_built_by_data():
    model = lamina.Sequential([layers.Dense(5, activation="relu"), Scale(3.0), layers.Dense(1)])
    model(torch.zeros(2, 4))
    return model, (4,)


def _functional_graph():
    a, b = layers.Input((4,), name="a"), layers.Input((4,), name="b")
    inner = lamina.Sequential([layers.Input((4,)), layers.Dense(4, activation="tanh")], name="inner")
    shared = layers.Dense(4, name="shared")
    h = layers.Concatenate()([shared(a), shared(inner(b))])
    pinned = layers.Dropout(0.5)(h, training=True)  # stays on in predict
    out_1 = layers.Dense(3, activation="softmax", name="probs")(pinned)
    out_2 = layers.Dense(1, name="value")(layers.LayerNormalization()(h))
    return lamina.Model({"a": a, "b": b}, [out_1, out_2]), {"a": (4,), "b": (4,)}


def _subclassed():
    model = TwoTower(units=3)
    model(torch.zeros(2, 5))
    return model, (5,)


BUILDERS = {f.__name__.lstrip("_"): f for f in (
    _sequential_with_input, _sequential_built_by_data, _functional_graph, _subclassed)}


def _data(shapes, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    if isinstance(shapes, dict):
        return {k: torch.randn(n, *s, generator=g).numpy() for k, s in shapes.items()}
    return torch.randn(n, *shapes, generator=g).numpy()


def _predict(model, x):
    torch.manual_seed(5)  # the functional graph's pinned dropout draws from torch's generator
    out = model.predict(x, verbose=0)
    return out if isinstance(out, list) else [out]


def _perturb(model):
    """Weights and BN statistics away from their initial values."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand(t.shape) * 0.5)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_round_trip_predicts_bitwise(tmp_path, kind):
    model, shapes = BUILDERS[kind]()
    _perturb(model)
    x = _data(shapes)
    model.save(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina")
    assert type(loaded) is type(model)
    if kind != "subclassed":  # a subclassed model names its sublayers anew in __init__
        assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(_predict(model, x), _predict(loaded, x)):
        assert np.array_equal(a, b)
    assert lamina.saving.serialize(loaded) == lamina.saving.serialize(model)


def test_continued_training_is_bitwise(tmp_path):
    model, shapes = _sequential_with_input()
    model.compile(optimizer=lamina.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = _data(shapes, n=12), np.arange(12) % 2
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina")
    assert loaded.optimizer.iterations == model.optimizer.iterations == 3
    histories = []
    for m in (model, loaded):
        lamina.utils.set_random_seed(3)
        histories.append(m.fit(x, y, batch_size=4, epochs=2, verbose=0).history)
    assert histories[0] == histories[1]
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


@register_serializable(package="tests")
class Transposed(layers.Layer):
    """A custom layer with its weight written as torch code often has it: a transposed view."""

    def build(self, input_shape):
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, 4 * input_shape[-1]).reshape(4, -1).t())

    def call(self, x):
        return x @ self.w


def test_continued_training_is_bitwise_with_a_weight_in_other_strides(tmp_path):
    """torch's fused Adam pairs each weight's elements with its moments' by memory: moments
    restored in other strides than the weight's train on silently wrong (they were restored
    contiguous)."""
    model = lamina.Sequential([layers.Input((6,)), Transposed(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=lamina.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).standard_normal((32, 6)).astype("float32"), np.arange(32) % 2
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina")
    histories = []
    for m in (model, loaded):
        lamina.utils.set_random_seed(3)
        histories.append(m.fit(x, y, batch_size=8, epochs=2, verbose=0).history)
    assert histories[0] == histories[1]
    assert torch.equal(model.layers[0].w, loaded.layers[0].w)


def test_without_optimizer_the_model_loads_uncompiled(tmp_path):
    model, _ = _sequential_built_by_data()
    model.compile("sgd", "mse")
    model.save(tmp_path / "m.lamina", include_optimizer=False)
    assert not lamina.load_model(tmp_path / "m.lamina").compiled
    assert lamina.load_model(tmp_path / "m.lamina", compile=False).compiled is False


def test_a_python_loss_function_is_left_out_with_a_warning(tmp_path):
    model, shapes = _sequential_built_by_data()
    model.compile("adam", loss=lambda y, p: ((y - p) ** 2).mean(-1))
    with pytest.warns(UserWarning, match="without its compile settings"):
        model.save(tmp_path / "m.lamina")
    assert not lamina.load_model(tmp_path / "m.lamina").compiled


def test_get_config_from_config(tmp_path):
    model, shapes = _functional_graph()
    clone = lamina.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    seq, _ = _sequential_with_input()
    assert lamina.Sequential.from_config(seq.get_config()).get_config() == seq.get_config()


def test_weights_file_is_plain_safetensors(tmp_path):
    model, shapes = _functional_graph()
    _perturb(model)
    model.save_weights(tmp_path / "w.safetensors")
    other, _ = _functional_graph()
    other.load_state_dict(safetensors.torch.load_file(tmp_path / "w.safetensors"))
    x = _data(shapes)
    for a, b in zip(_predict(model, x), _predict(other, x)):
        assert np.array_equal(a, b)
    third, _ = _functional_graph()
    third.load_weights(tmp_path / "w.safetensors")
    third.load_weights(tmp_path / "w.safetensors")  # idempotent
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 third.state_dict().values()))


def test_weights_of_another_architecture_are_refused(tmp_path):
    model, _ = _sequential_built_by_data()
    model.save_weights(tmp_path / "w.safetensors")
    other = lamina.Sequential([layers.Dense(6), Scale(), layers.Dense(1)])
    other(torch.zeros(1, 4))
    with pytest.raises(SavingError, match=r"weight '_layer_stack.0.kernel' is \(5, 4\)"):
        other.load_weights(tmp_path / "w.safetensors")


def test_overwrite_is_atomic(tmp_path, monkeypatch):
    model, shapes = _sequential_with_input()
    path = tmp_path / "m.lamina"
    model.save(path)
    before = path.read_bytes()
    _perturb(model)
    written = []

    def failing_writestr(self, info, data, *args, **kwargs):
        written.append(info)
        if len(written) == 2:
            raise OSError("disk full")
        return original(self, info, data, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(SavingError, match=f"Cannot write '{path}': disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.lamina"]  # no temporary file left behind
    lamina.load_model(path)


def test_equal_models_give_equal_files(tmp_path):
    model, _ = _sequential_with_input()
    model.save(tmp_path / "a.lamina")
    model.save(tmp_path / "b.lamina")
    assert (tmp_path / "a.lamina").read_bytes() == (tmp_path / "b.lamina").read_bytes()


def test_custom_objects_instead_of_registration(tmp_path):
    class Offset(layers.Layer):
        def call(self, x):
            return x + 1.0

    register_serializable(package="tmp")(Offset)
    model = lamina.Sequential([layers.Input((2,)), Offset()])
    model.save(tmp_path / "m.lamina")
    lamina.saving.registry._CUSTOM_OBJECTS.pop("tmp>Offset")
    with pytest.raises(SavingError, match="tmp>Offset"):
        lamina.load_model(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina", custom_objects={"tmp>Offset": Offset})
    assert np.array_equal(loaded.predict(np.zeros((1, 2)), verbose=0), np.ones((1, 2)))


def test_an_unregistered_layer_saves_and_loads_with_custom_objects_as_keras(tmp_path):
    class Unregistered(layers.Layer):
        def call(self, x):
            return x * 3.0

    model = lamina.Sequential([layers.Input((3,)), Unregistered()])
    model.save(tmp_path / "m.lamina")
    with pytest.raises(SavingError, match=r"Unregistered.*custom_objects"):
        lamina.load_model(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina", custom_objects={"Unregistered": Unregistered})
    assert np.array_equal(loaded.predict(np.ones((1, 3)), verbose=0), np.full((1, 3), 3.0))


@pytest.mark.parametrize("make, needle", [
    (lambda: layers.Lambda(lambda x: x * 2), "wraps a Python function"),
    (lambda: layers.TorchModuleWrapper(torch.nn.Linear(3, 3)), "wraps the torch module Linear"),
])
def test_unsaveable_layers_are_named(tmp_path, make, needle):
    model = lamina.Sequential([layers.Input((3,)), make()])
    with pytest.raises(SavingError, match=needle):
        model.save(tmp_path / "m.lamina")
    model.save_weights(tmp_path / "w.safetensors")  # the weights can still be kept
    assert not (tmp_path / "m.lamina").exists()


def test_file_names_and_overwrite(tmp_path):
    model, _ = _sequential_built_by_data()
    with pytest.raises(SavingError, match=r"must end with \.lamina or \.keras"):
        model.save(tmp_path / "m.safetensors")
    with pytest.raises(SavingError, match=r"must end with \.weights\.h5 or \.safetensors"):
        model.save_weights(tmp_path / "w.h5")
    model.save(tmp_path / "m.lamina")
    with pytest.raises(SavingError, match="overwrite=False"):
        model.save(tmp_path / "m.lamina", overwrite=False)
    with pytest.raises(SavingError, match="No such model file"):
        lamina.load_model(tmp_path / "missing.lamina")
    with pytest.raises(ValueError, match="safe_mode must be True"):
        lamina.load_model(tmp_path / "m.lamina", safe_mode=False)
    unbuilt = lamina.Sequential([layers.Dense(2)])
    with pytest.raises(SavingError, match="build it"):
        unbuilt.load_weights(tmp_path / "m.lamina")


def test_every_layer_type_round_trips(tmp_path):
    """Each lamina layer class with no required constructor argument beyond what a small
    recipe gives, saved in a model and loaded back, predicts bitwise the same."""
    recipes = _layer_recipes()
    missing = sorted(set(_public_layer_classes()) - set(recipes) - _NOT_IN_A_GRAPH)
    assert not missing, f"no round-trip recipe for {missing}"
    for name, (make, shape) in recipes.items():
        inp = layers.Input(shape, dtype="int64" if name == "Embedding" else None)
        model = lamina.Model(inp, make()(inp))
        _perturb(model)
        model.save(tmp_path / f"{name}.lamina")
        loaded = lamina.load_model(tmp_path / f"{name}.lamina")
        x = (np.arange(12).reshape(2, 6) % 5) if name == "Embedding" else _data(shape, n=2)
        for a, b in zip(_predict(model, x), _predict(loaded, x)):
            assert np.array_equal(a, b), name


_NOT_IN_A_GRAPH = {"InputLayer", "Lambda", "TorchModuleWrapper", "Model", "Sequential", "Layer",
                   "Functional", "ConditionalBatchNormalization"}  # the last: a test of its own


def test_conditional_batch_norm_round_trips(tmp_path):
    x, ids = layers.Input((6, 4)), layers.Input((), dtype="int64")
    vector = layers.Input((3,))
    h = layers.ConditionalBatchNormalization(num_classes=5)([x, ids])
    out = layers.ConditionalBatchNormalization()([h, vector])
    model = lamina.Model([x, ids, vector], out)
    _perturb(model)
    model.save(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina")
    data = [_data((6, 4), n=2), np.array([1, 4]), _data((3,), n=2)]
    assert np.array_equal(_predict(model, data)[0], _predict(loaded, data)[0])


def _public_layer_classes():
    from lamina.saving.registry import builtin_layers

    return {n for n, cls in builtin_layers().items() if n == cls.__name__ and hasattr(layers, n)}


def _layer_recipes():
    L = layers  # noqa: N806
    seq, img, vol, flat = (6, 4), (6, 6, 2), (4, 4, 4, 2), (6,)
    recipes = {
        "Dense": (lambda: L.Dense(3), flat), "Activation": (lambda: L.Activation("relu"), flat),
        "Embedding": (lambda: L.Embedding(5, 3), flat), "Masking": (lambda: L.Masking(), seq),
        "Dropout": (lambda: L.Dropout(0.2), flat), "AlphaDropout": (lambda: L.AlphaDropout(0.2), flat),
        "GaussianDropout": (lambda: L.GaussianDropout(0.2), flat),
        "GaussianNoise": (lambda: L.GaussianNoise(0.2), flat),
        "ELU": (lambda: L.ELU(), flat), "LeakyReLU": (lambda: L.LeakyReLU(), flat),
        "PReLU": (lambda: L.PReLU(), flat), "ReLU": (lambda: L.ReLU(), flat),
        "Softmax": (lambda: L.Softmax(), flat), "Flatten": (lambda: L.Flatten(), seq),
        "Reshape": (lambda: L.Reshape((4, 6)), seq), "Permute": (lambda: L.Permute((2, 1)), seq),
        "RepeatVector": (lambda: L.RepeatVector(2), flat),
        "LSTM": (lambda: L.LSTM(3), seq), "GRU": (lambda: L.GRU(3), seq),
        "SimpleRNN": (lambda: L.SimpleRNN(3), seq),
        "Bidirectional": (lambda: L.Bidirectional(L.LSTM(2)), seq),
        "BatchNormalization": (lambda: L.BatchNormalization(), seq),
        "LayerNormalization": (lambda: L.LayerNormalization(), seq),
        "GroupNormalization": (lambda: L.GroupNormalization(groups=2), seq),
        "Normalization": (lambda: L.Normalization(mean=1.0, variance=4.0), flat),
    }
    for rank, shape in ((1, seq), (2, img), (3, vol)):
        d = f"{rank}D"
        recipes.update({
            f"Conv{d}": (lambda d=d: getattr(L, f"Conv{d}")(3, 2), shape),
            f"Conv{d}Transpose": (lambda d=d: getattr(L, f"Conv{d}Transpose")(3, 2), shape),
            f"MaxPooling{d}": (lambda d=d: getattr(L, f"MaxPooling{d}")(2), shape),
            f"AveragePooling{d}": (lambda d=d: getattr(L, f"AveragePooling{d}")(2), shape),
            f"GlobalMaxPooling{d}": (lambda d=d: getattr(L, f"GlobalMaxPooling{d}")(), shape),
            f"GlobalAveragePooling{d}": (lambda d=d: getattr(L, f"GlobalAveragePooling{d}")(), shape),
            f"ZeroPadding{d}": (lambda d=d: getattr(L, f"ZeroPadding{d}")(1), shape),
            f"Cropping{d}": (lambda d=d: getattr(L, f"Cropping{d}")(1), shape),
            f"UpSampling{d}": (lambda d=d: getattr(L, f"UpSampling{d}")(2), shape),
            f"SpatialDropout{d}": (lambda d=d: getattr(L, f"SpatialDropout{d}")(0.2), shape),
        })
        if rank < 3:
            recipes[f"DepthwiseConv{d}"] = (lambda d=d: getattr(L, f"DepthwiseConv{d}")(2), shape)
            recipes[f"SeparableConv{d}"] = (lambda d=d: getattr(L, f"SeparableConv{d}")(3, 2), shape)
    for merge in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"):
        recipes[merge] = (lambda m=merge: _TwoWay(getattr(L, m)()), flat)
    recipes["Dot"] = (lambda: _TwoWay(L.Dot(axes=1)), flat)
    recipes.update({
        "MultiHeadAttention": (lambda: _SelfAttention(L.MultiHeadAttention(2, 3)), seq),
        "Attention": (lambda: _TwoWay(L.Attention(use_scale=True)), seq),
        "RNN": (lambda: L.RNN(L.LSTMCell(3), return_sequences=True), seq),
        "LSTMCell": (lambda: L.RNN(L.LSTMCell(3, unit_forget_bias=False)), seq),
        "GRUCell": (lambda: L.RNN(L.GRUCell(3)), seq),
        "StackedRNNCells": (lambda: L.RNN([L.GRUCell(3), L.SimpleRNNCell(2)]), seq),
        "SimpleRNNCell": (lambda: L.RNN(L.SimpleRNNCell(3)), seq),
        "Rescaling": (lambda: L.Rescaling(0.5, offset=1.0), flat),
        "Resizing": (lambda: L.Resizing(4, 3), img), "CenterCrop": (lambda: L.CenterCrop(4, 4), img),
        "RandomFlip": (lambda: L.RandomFlip(), img), "RandomRotation": (lambda: L.RandomRotation(0.1), img),
        "RandomZoom": (lambda: L.RandomZoom(0.1), img),
    })
    for name in _optional_recipes():
        recipes.update(name)
    return recipes


def _optional_recipes():
    """Layers other families add (lamina-only normalizations, ...), when present."""
    L = layers  # noqa: N806
    found = []
    for name, make, shape in (
            ("InstanceNormalization", lambda: L.InstanceNormalization(), (6, 4)),
            ("SwitchableNormalization", lambda: L.SwitchableNormalization(), (6, 4)),
            ("UnitNormalization", lambda: L.UnitNormalization(), (6,)),
    ):
        if hasattr(L, name):
            found.append({name: (make, shape)})
    return found


class _TwoWay:
    """Applies a merge layer to its input and a Dense of it: a two-input call inside a graph."""

    def __init__(self, merge):
        self.merge = merge

    def __call__(self, x):
        return self.merge([x, layers.Dense(x.shape[-1])(x)])


class _SelfAttention:
    """Calls an attention layer with its input as query and value: two tensor arguments."""

    def __init__(self, attention):
        self.attention = attention

    def __call__(self, x):
        return self.attention(x, x)


def test_a_warning_free_save(tmp_path):
    model, _ = _sequential_with_input()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "m.lamina")
    assert lamina.load_model(tmp_path / "m.lamina").compiled
