"""model.export("m.onnx"): the file, run by onnxruntime, predicts what `predict` does (1e-5), for
the FCN, an LSTM model and a model using every normalization layer, at batch sizes other than the
traced one."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.tsc import fcn

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _train_briefly(model, x, y):
    """One short epoch, so that moving statistics and weights are not their initial values."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def _onnx_outputs(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, session.run(None, feeds)


def test_fcn_matches_predict(tmp_path, rng):
    model = fcn((24, 1), 3)
    x = rng.standard_normal((16, 24, 1)).astype("float32")
    _train_briefly(model, x, rng.integers(0, 3, 16))
    model.export(tmp_path / "fcn.onnx", verbose=False)
    x_test = rng.standard_normal((5, 24, 1)).astype("float32")
    session, (probs,) = _onnx_outputs(tmp_path / "fcn.onnx", {"series": x_test})
    assert [i.name for i in session.get_inputs()] == ["series"]
    assert [o.name for o in session.get_outputs()] == ["classes"]
    np.testing.assert_allclose(probs, model.predict(x_test, verbose=0), atol=1e-5, rtol=0)


def test_lstm_model_matches_predict_at_other_batch_sizes(tmp_path, rng, capsys):
    inp = layers.Input((None, 3), name="steps")
    h = layers.LSTM(8, return_sequences=True)(inp)
    out = layers.Dense(2, activation="softmax", name="probs")(layers.LSTM(4)(h))
    model = lamina.Model(inp, out)
    _train_briefly(model, rng.standard_normal((16, 6, 3)).astype("float32"), rng.integers(0, 2, 16))
    # torch.export unrolls the recurrence over a fixed number of steps: a clear error for a None
    # length, and the length given in input_signature exports (the batch axis stays dynamic).
    with pytest.raises(ValueError, match=r"fixes the size of an input axis.*input_signature"):
        model.export(tmp_path / "lstm.onnx")
    model.export(tmp_path / "lstm.onnx", input_signature=[(None, 6, 3)])
    assert "lstm.onnx" in capsys.readouterr().out
    for batch in (1, 7):  # traced at 2
        x = rng.standard_normal((batch, 6, 3)).astype("float32")
        _, (probs,) = _onnx_outputs(tmp_path / "lstm.onnx", {"steps": x})
        np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_every_norm_traces_to_standard_onnx_ops(tmp_path, rng):
    series = layers.Input((10, 4), name="series")
    label = layers.Input((), dtype="int64", name="label")
    h = layers.Conv1D(8, 3, padding="same")(series)
    h = layers.BatchNormalization()(h)
    h = layers.LayerNormalization()(h)
    h = layers.GroupNormalization(groups=2)(h)
    h = layers.InstanceNormalization()(h)
    h = layers.SwitchableNormalization()(h)
    h = layers.ConditionalBatchNormalization(num_classes=3)([h, label])
    out = layers.Dense(3, activation="softmax", name="probs")(layers.GlobalAveragePooling1D()(h))
    model = lamina.Model([series, label], out)
    x, labels = rng.standard_normal((32, 10, 4)).astype("float32"), rng.integers(0, 3, 32)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit([x, labels], labels, batch_size=8, epochs=2, verbose=0)
    model.export(tmp_path / "norms.onnx", verbose=False)

    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "norms.onnx")).graph.node}
    assert all(not op.startswith("Python") for op in ops)
    feeds = {"series": x[:6] * 3 + 1, "label": labels[:6]}
    _, (probs,) = _onnx_outputs(tmp_path / "norms.onnx", feeds)
    np.testing.assert_allclose(probs, model.predict([feeds["series"], feeds["label"]], verbose=0),
                               atol=1e-5, rtol=0)


def test_subclassed_model_needs_or_takes_an_input_signature(tmp_path, rng):
    class TwoLayers(lamina.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(5, activation="relu")
            self.out = layers.Dense(2)

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    model = TwoLayers()
    with pytest.raises(ValueError, match=r"input shape of model .* is unknown.*input_signature"):
        model.export(tmp_path / "sub.onnx")
    model.export(tmp_path / "sub.onnx", input_signature=[(None, 3)], verbose=False)
    x = rng.standard_normal((4, 3)).astype("float32")
    _, (y,) = _onnx_outputs(tmp_path / "sub.onnx", {"input": x})
    np.testing.assert_allclose(y, model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_format_errors(tmp_path):
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"cannot tell the format from .*model\.bin'.*format='onnx'"):
        model.export(tmp_path / "model.bin")
    with pytest.raises(ValueError, match=r"unsupported format 'tf_saved_model'.*\['onnx'\]"):
        model.export(tmp_path / "model", format="tf_saved_model")
    model.export(tmp_path / "model.bin", format="onnx", verbose=False)  # a format given wins
    assert (tmp_path / "model.bin").stat().st_size > 0
    assert torch.is_grad_enabled()  # export leaves autograd as it found it
