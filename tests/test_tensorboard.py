"""callbacks.TensorBoard: event files under Keras 3's folders and tag names, read back with
TensorBoard's own EventAccumulator (Keras' writer needs TensorFlow, so the names are Keras 3's
source: epoch_<log> at step = epoch in train/ and validation/, batch_<log> every update_freq)."""

import sys

import numpy as np
import pytest

import lamina
from lamina import callbacks

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(path):
    events = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_epoch_and_batch_scalars_and_histograms_as_keras_names_them(rng, tmp_path):
    x = rng.standard_normal((40, 3)).astype("float32")
    y = rng.integers(0, 2, (40, 1)).astype("float32")
    model = lamina.Sequential([lamina.layers.Input((3,)), lamina.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    board = callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=1, update_freq=2)
    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0, callbacks=[board])

    train, validation = _read(tmp_path / "train"), _read(tmp_path / "validation")
    for name in ("loss", "accuracy"):
        logged = train.Scalars(f"epoch_{name}")
        assert [e.step for e in logged] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in logged], history.history[name], rtol=1e-6)
        np.testing.assert_allclose([e.value for e in validation.Scalars(f"epoch_{name}")],
                                   history.history[f"val_{name}"], rtol=1e-6)
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == pytest.approx([0.001] * 3)
    # 30 training samples in batches of 8: 4 batches an epoch, 12 in all; every 2nd is written.
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6, 8, 10, 12]
    dense = model.layers[0].name
    assert f"{dense}/kernel/histogram" in train.Tags()["histograms"]
    assert "keras" in " ".join(train.Tags()["tensors"])  # the model summary text
    assert not any(tag.startswith("val_") for tag in train.Tags()["scalars"] + validation.Tags()["scalars"])


def test_bad_arguments_and_missing_package_are_explained(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="update_freq"):
        callbacks.TensorBoard(tmp_path, update_freq="sometimes")
    with pytest.raises(ValueError, match="profile_batch"):
        callbacks.TensorBoard(tmp_path, profile_batch=2)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"lamina\[tensorboard\]"):
        callbacks.TensorBoard(tmp_path)
