"""Op nodes in .keras files, both ways: functional models using ops (`x + inputs`, `x[:, 0]`,
`ops.mean(...)`, ...) saved by lamina open in Keras 3 itself (torch backend), and Keras' own
such files open in lamina, predicting the same to 1e-5 with the same weights. Keras is the
oracle: its loader reads lamina's file, and its model makes the predictions compared.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pprint
import re
import zipfile

import keras
import numpy as np
import pytest

import lamina
from lamina import layers, ops
from lamina.ops._dispatch import _OPS
from lamina.saving import SavingError, keras_ops
from lamina.saving.keras_op_table import KERAS_OPS

RNG = np.random.default_rng(5)


def keras_op_table() -> dict:
    """lamina op name -> (Keras ops module, Operation class, constructor arguments, call
    arguments) for every lamina op whose Keras counterpart is an Operation taking only arguments
    lamina's op takes. The counterpart is the Operation class Keras' op function builds (named in
    its source: expand_dims -> ExpandDims, svd -> SVD), else the class named after the function
    (an alias by its target: swish -> silu -> Silu). keras_op_table.py is this, printed."""
    from keras.src.ops.operation import Operation

    def names(fn, skip):
        return tuple(("*" if p.kind is p.VAR_POSITIONAL else "") + p.name
                     for p in inspect.signature(fn).parameters.values()
                     if p.name not in skip and p.kind is not p.VAR_KEYWORD)

    def operation(module, class_name):
        cls = getattr(module, class_name, None)
        return cls if isinstance(cls, type) and issubclass(cls, Operation) else None

    table = {}
    for name, fn in sorted(_OPS.items()):
        public = getattr(keras.ops, fn.__module__.rsplit(".", 1)[-1], keras.ops)
        function = getattr(public, name, None) or getattr(keras.ops, name, None)
        if function is None:
            continue
        module = importlib.import_module(function.__module__)
        built = {c for c in re.findall(r"\b([A-Z]\w*)\(", inspect.getsource(function))
                 if operation(module, c)}
        cls = operation(module, built.pop() if len(built) == 1 else
                        "".join(part[:1].upper() + part[1:] for part in function.__name__.split("_")))
        if cls is None:
            continue
        config, call = names(cls.__init__, {"self", "name"}), names(cls.call, {"self"})
        if {n.lstrip("*") for n in config + call} <= set(inspect.signature(fn).parameters):
            table[name] = (cls.__module__.removeprefix("keras.src.ops."), cls.__name__, config, call)
    return table


def test_op_table_matches_installed_keras():
    expected = keras_op_table()
    assert KERAS_OPS == expected, "regenerate keras_op_table.py:\n" + pprint.pformat(expected)


# ----------------------------------------------------------------------------- helpers
def _x(*shape):
    return RNG.normal(size=(4, *shape)).astype("float32")


def _randomize(model):
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([RNG.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    return model


def _predict(model, x):
    out = model.predict(x, verbose=0) if isinstance(model, keras.Model) else model.predict(x)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _same(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, q, atol=1e-5, rtol=1e-5)


def _both_ways(build, x, tmp_path):
    """`build(lib)` makes the same model with lib = lamina or keras. lamina's file must open in
    Keras, Keras' in lamina, each predicting what the saving library's model predicts."""
    mine = _randomize(build(lamina))
    mine.save(tmp_path / "lamina.keras")
    theirs = keras.saving.load_model(tmp_path / "lamina.keras")
    _same(_predict(theirs, x), _predict(mine, x))
    _same(_predict(lamina.saving.load_model(tmp_path / "lamina.keras"), x), _predict(mine, x))

    theirs = _randomize(build(keras))
    theirs.save(tmp_path / "keras.keras")
    mine = lamina.saving.load_model(tmp_path / "keras.keras")
    _same(_predict(mine, x), _predict(theirs, x))


# ----------------------------------------------------------------------------- models
def _arithmetic(lib):
    inputs = lib.Input((5, 3))
    x = lib.layers.Dense(3)(inputs)
    x = x + inputs
    x = x * 2.0
    x = 2.0 * x
    x = -x
    return lib.Model(inputs, [x[:, 0], x[..., :2], x[:, 1:4:2, -1], x - 1.5, x / inputs])


def _reductions(lib):
    inputs = lib.Input((5, 3))
    x = lib.layers.Dense(4)(inputs)
    return lib.Model(inputs, [lib.ops.mean(x, axis=1), lib.ops.sum(x, axis=-1, keepdims=True),
                              lib.ops.mean(x, axis=(1, 2), keepdims=True), lib.ops.sum(x, axis=(1, 2))])


def _shapes(lib):
    o = lib.ops
    inputs = lib.Input((5, 3))
    x = lib.layers.Dense(4)(inputs)
    e = o.expand_dims(x, 1)
    return lib.Model(inputs, [e, o.squeeze(e, axis=1), o.reshape(x, (-1, 20)),
                              o.transpose(x, (0, 2, 1)), o.transpose(x)])


def _joins(lib):
    o = lib.ops
    inputs = lib.Input((5, 3))
    x = lib.layers.Dense(3)(inputs)
    y = x * inputs
    return lib.Model(inputs, [o.concatenate([x, inputs, y], axis=-1), o.concatenate([x, y], axis=1),
                              o.stack([x, inputs, y], axis=1), o.matmul(x, o.transpose(y, (0, 2, 1)))])


def _nn(lib):
    o = lib.ops
    inputs = lib.Input((5, 3))
    x = lib.layers.Dense(4)(inputs)
    return lib.Model(inputs, [o.relu(x), o.softmax(x), o.nn.softmax(x, axis=1), o.nn.relu(x),
                              o.sigmoid(x), o.swish(x), o.silu(x), o.nn.rms_normalization(x),
                              o.nn.layer_normalization(x, epsilon=1e-3)])


def _transformer(lib):
    L = lib.layers
    inputs = lib.Input((6, 8))
    attended = L.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    x = L.LayerNormalization(epsilon=1e-6)(inputs + attended)
    ff = L.Dense(8)(L.Dense(16, activation="relu")(x))
    x = L.LayerNormalization(epsilon=1e-6)(x + ff)
    return lib.Model(inputs, L.Dense(2)(lib.ops.mean(x, axis=1)))


def _attention(lib):
    """ops.nn.dot_product_attention, whose mask= Keras records as a keyword of the op's call."""
    o = lib.ops
    inputs = lib.Input((5, 8))
    q, k, v = (o.reshape(lib.layers.Dense(8)(inputs), (-1, 5, 2, 4)) for _ in range(3))
    mask = o.expand_dims(o.expand_dims(o.greater(inputs[:, :, 0], -0.5), 1), 1)
    return lib.Model(inputs, [o.dot_product_attention(q, k, v, mask=mask),
                              o.dot_product_attention(q, k, v, scale=0.3, is_causal=True)])


@pytest.mark.parametrize("build", [_arithmetic, _reductions, _shapes, _joins, _nn, _attention,
                                   _transformer],
                         ids=lambda f: f.__name__.strip("_"))
def test_ops_cross_both_ways(build, tmp_path):
    _both_ways(build, {_transformer: _x(6, 8), _attention: _x(5, 8)}.get(build, _x(5, 3)), tmp_path)


# ----------------------------------------------------------------------------- limits
def test_op_keras_lacks_is_a_lamina_only_entry(tmp_path):
    """ops.scatter_update: Keras' ScatterUpdate takes a `reduction` lamina's op has not."""
    inputs = layers.Input((4,))
    x = layers.Dense(3)(inputs)
    model = lamina.Model(inputs, ops.scatter_update(x, [[0, 1], [1, 2]], [5.0, -1.0]))
    with pytest.warns(UserWarning, match=r"ops\.scatter_update"):
        model.save(tmp_path / "m.keras")
    x = _x(4)[:3]
    _same(_predict(lamina.saving.load_model(tmp_path / "m.keras"), x), _predict(model, x))
    with pytest.raises(Exception, match="OpLayer"):
        keras.saving.load_model(tmp_path / "m.keras")


def test_argument_keras_op_lacks_must_be_at_its_default(monkeypatch):
    """An argument of a lamina op outside Keras' op (here: Keras' Mean as if it had no keepdims)
    is left out at its default and refused otherwise; a call that does not fit the op is refused."""
    monkeypatch.setitem(keras_ops.KERAS_OPS, "mean", ("numpy", "Mean", ("axis",), ("x",)))
    x = {"class_name": "__keras_tensor__", "config": {"shape": [None, 3], "keras_history": ["i", 0, 0]}}

    def entry(**kwargs):
        return {"class_name": "OpLayer", "config": {"name": "m", "function": "mean"},
                "inbound_nodes": [{"args": [x], "kwargs": kwargs}]}

    written = keras_ops.to_keras(entry(axis=1, keepdims=False), "model 'x'")
    assert written["config"] == {"name": "m", "axis": 1}
    assert written["inbound_nodes"] == [{"args": [x], "kwargs": {}}]
    with pytest.raises(SavingError, match=r"op 'm' \(ops\.mean\) sets keepdims=true.*\.lamina"):
        keras_ops.to_keras(entry(axis=1, keepdims=True), "model 'x'")
    with pytest.raises(SavingError, match=r"op 'm' \(ops\.mean\).*does not fit.*bogus"):
        keras_ops.to_keras(entry(bogus=1), "model 'x'")


def test_keras_operation_lamina_lacks_is_refused(tmp_path):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3)(inputs)
    keras.Model(inputs, keras.ops.nn.log_softmax(x) + keras.ops.nn.psnr(x, x, 1.0)).save(
        tmp_path / "k.keras")
    with pytest.raises(SavingError, match=r"Keras operation PSNR.*lamina has no op"):
        lamina.saving.load_model(tmp_path / "k.keras")


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(config="x"), "has no config dict"),
    (lambda e: e["config"].update(axes=[1]), r"sets \['axes'\], which lamina's ops.mean does not take"),
    (lambda e: e["inbound_nodes"][0]["args"].extend([1, 2]), "has 3 arguments"),
])
def test_malformed_keras_operation_is_refused(tmp_path, change, message):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.ops.mean(keras.layers.Dense(3)(inputs), axis=1)).save(tmp_path / "k.keras")
    with zipfile.ZipFile(tmp_path / "k.keras") as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    change(next(e for e in config["config"]["layers"] if e["class_name"] == "Mean"))
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    with pytest.raises(SavingError, match=message):
        lamina.saving.load_model(tmp_path / "bad.keras")
