"""Issue 15's file bugs, one test each: sizes a file declares are checked against what it holds
before anything is allocated; loads into a model are all or nothing; every failure is a
SavingError naming the file; lamina's files carry a digest; non-finite weights are refused."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import h5py
import numpy as np
import pytest
import safetensors.torch
import torch

import lamina
from lamina import layers
from lamina.saving import SavingError, register_serializable
from tests.saving.fuzz_files import legacy_h5


def _model(seed=0):
    lamina.utils.set_random_seed(seed)
    return lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="relu"),
                              layers.BatchNormalization(), layers.Dense(2)])


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_state(model, state):
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def _rewrite_zip(path, edit):
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    edit(entries)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


# ----------------------------------------------------------------------------- declared sizes
@register_serializable(package="test_file_limits")
class Pooled(lamina.Model):
    """A subclassed model: rebuilt from its build_config by a run on zeros of that shape."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = layers.Dense(2)

    def call(self, x):
        return self.head(x.mean(dim=1))

    def get_config(self):
        return {"name": self.name}


def test_a_build_shape_beyond_the_file_is_refused_before_it_is_allocated(tmp_path):
    """The 1.8 KB file whose build_config asks for a [25000, 40000] input (4 GB of zeros)."""
    model = Pooled()
    model(torch.zeros(1, 5, 3))
    path = tmp_path / "pooled.lamina"
    model.save(path)
    assert lamina.load_model(path).count_params() == 8

    def inflate(entries):
        config = json.loads(entries["config.json"])
        config["build_config"]["input_shape"] = [None, 25000, 40000]
        entries["config.json"] = json.dumps(config).encode()

    _rewrite_zip(path, inflate)
    with pytest.raises(SavingError, match=r"pooled\.lamina.*layer 'pooled' \(Pooled\).*"
                                          r"\(1, 25000, 40000\)"):
        lamina.load_model(path)


def test_a_legacy_h5_declaring_more_units_than_it_holds_is_refused(tmp_path):
    """The 17 KB legacy .h5 declaring Dense(units=2e7), which loaded a 140M-parameter model."""
    model = _model()
    legacy_h5(model, tmp_path / "ok.h5")
    lamina.load_model(tmp_path / "ok.h5")
    legacy_h5(model, tmp_path / "units.h5",
              lambda entry: entry["config"]["layers"][1]["config"].update(units=20_000_000))
    with pytest.raises(SavingError, match=r"units\.h5.*layer 'dense' \(Dense\).*\(4, 20000000\)"):
        lamina.load_model(tmp_path / "units.h5")


@pytest.mark.parametrize("replace, needle", [
    # an unwritten dataset reads as fill values: gigabytes of zeros from a small file
    (lambda g: g.create_dataset("0", shape=(40000, 25000), dtype="f4", chunks=True),
     r"'layers/dense/vars/0' declares shape \(40000, 25000\)"),
    (lambda g: g.__setitem__("0", h5py.ExternalLink("/etc/hostname", "/x")), "ExternalLink"),
    (lambda g: g.__setitem__("0", h5py.SoftLink("/layers/dense_1/vars/0")), "SoftLink"),
])
def test_an_h5_array_that_is_not_in_the_file_is_refused(tmp_path, replace, needle):
    path = tmp_path / "hollow.weights.h5"
    _model().save_weights(path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        replace(f["layers/dense/vars"])
    target = _model(1)
    state = _state(target)
    with pytest.raises(SavingError, match=r"hollow\.weights\.h5.*" + needle):
        target.load_weights(path)
    _assert_state(target, state)


def _deflate(path, replace=None):
    """Rewrite a zip archive with deflated entries, `replace` {name: bytes} put in."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in {**entries, **(replace or {})}.items():
            z.writestr(name, data)


def test_a_keras_archive_member_inflating_to_zeros_is_refused(tmp_path):
    """The 1 MiB .keras whose weights member inflated to 2 GB: refused from its declared size."""
    path = tmp_path / "bomb.keras"
    _model().save(path)
    _deflate(path, {"model.weights.h5": b"\0" * (64 * 2**20)})
    with pytest.raises(SavingError, match=r"bomb\.keras.*'model\.weights\.h5' declares 67108864"):
        lamina.load_model(path)


def test_a_deflated_keras_archive_still_loads(tmp_path):
    """An archive recompressed by another tool (entries deflated at ordinary ratios) loads."""
    model = _model()
    path = tmp_path / "deflated.keras"
    model.save(path)
    _deflate(path)
    _assert_state(lamina.load_model(path), _state(model))


# ----------------------------------------------------------------------------- all or nothing
def test_a_weights_h5_missing_one_variable_leaves_the_model_untouched(tmp_path):
    path = tmp_path / "partial.weights.h5"
    _model(0).save_weights(path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense_1/vars/1"]  # the last layer's bias
        del f.attrs["lamina_digest"]  # (else the digest is what catches it)
    target = _model(1)
    state = _state(target)
    with pytest.raises(SavingError, match=r"partial\.weights\.h5.*'layers/dense_1'.*holds 1 arrays"):
        target.load_weights(path)
    _assert_state(target, state)  # layer 0 included


@pytest.mark.parametrize("suffix", [".weights.h5", ".safetensors", ".lamina", ".keras"])
def test_nonfinite_weights_are_refused_unless_allowed(tmp_path, suffix):
    """Every format: a NaN weight (written by lamina, digest and all) is refused on load, the
    target model untouched; allow_nonfinite=True loads it."""
    model = _model(0)
    with torch.no_grad():
        model.layers[0].kernel[0, 0] = float("nan")
    path = tmp_path / f"nan{suffix}"
    (model.save if suffix in (".lamina", ".keras") else model.save_weights)(path)
    target = _model(1)
    state = _state(target)
    with pytest.raises(SavingError, match=rf"nan{suffix}.*NaN or infinite.*allow_nonfinite=True"):
        target.load_weights(path)
    _assert_state(target, state)
    target.load_weights(path, allow_nonfinite=True)
    assert torch.isnan(target.layers[0].kernel[0, 0])
    if suffix in (".lamina", ".keras"):
        with pytest.raises(SavingError, match="NaN or infinite"):
            lamina.load_model(path)
        assert torch.isnan(lamina.load_model(path, allow_nonfinite=True).layers[0].kernel[0, 0])


# ----------------------------------------------------------------------------- digests
def test_a_flipped_weight_in_a_safetensors_file_is_caught(tmp_path):
    """A raw .safetensors has no zip CRC: the digest catches a bit flip that still parses."""
    path = tmp_path / "w.safetensors"
    _model().save_weights(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # in the last tensor's bytes
    path.write_bytes(bytes(data))
    target = _model(1)
    state = _state(target)
    with pytest.raises(SavingError, match=r"w\.safetensors.*digest"):
        target.load_weights(path)
    _assert_state(target, state)


def test_a_flipped_weight_in_a_weights_h5_file_is_caught(tmp_path):
    path = tmp_path / "w.weights.h5"
    _model().save_weights(path)
    with h5py.File(path, "r+") as f:
        kernel = f["layers/dense/vars/0"]
        value = kernel[()]
        value[0, 0] = np.nextafter(value[0, 0], np.float32(1))  # one ulp
        kernel[...] = value
    with pytest.raises(SavingError, match=r"w\.weights\.h5.*digest"):
        _model(1).load_weights(path)


def test_a_damaged_digest_key_is_not_taken_for_an_old_file(tmp_path):
    """A flipped byte in the digest's key, and one in the weights: the first must not pass for a
    file from before digests, or the second loads silently (the fuzzer found this)."""
    path = tmp_path / "key.safetensors"
    _model().save_weights(path)
    data = bytearray(path.read_bytes())
    at = data.find(b'"lamina_digest"')
    data[at + 3] ^= 0x04  # lamina_digest -> lemina_digest
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SavingError, match=r"key\.safetensors.*metadata is damaged"):
        _model(1).load_weights(path)


def test_files_from_before_the_digest_still_load(tmp_path):
    """Older lamina files carry no digest: they load as before."""
    model = _model()
    path = tmp_path / "old.safetensors"
    path.write_bytes(safetensors.torch.save(
        {k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"format": "lamina"}))
    target = _model(1)
    target.load_weights(path)
    _assert_state(target, _state(model))

    h5 = tmp_path / "old.weights.h5"
    model.save_weights(h5)
    with h5py.File(h5, "r+") as f:
        del f.attrs["lamina_digest"]
    target = _model(1)
    target.load_weights(h5)
    _assert_state(target, _state(model))

    native = tmp_path / "old.lamina"
    model.save(native)

    def strip(entries):
        data = entries["model.safetensors"]
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
        del header["__metadata__"]
        raw = json.dumps(header).encode()
        entries["model.safetensors"] = struct.pack("<Q", len(raw)) + raw + data[8 + length:]

    _rewrite_zip(native, strip)
    _assert_state(lamina.load_model(native), _state(model))


def test_keras_reads_a_weights_file_carrying_the_digest(tmp_path):
    keras = pytest.importorskip("keras")
    model = _model()
    path = tmp_path / "for_keras.weights.h5"
    model.save_weights(path)
    with h5py.File(path) as f:
        assert "lamina_digest" in f.attrs
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    twin.load_weights(path)
    x = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    np.testing.assert_allclose(np.asarray(twin.predict(x, verbose=0)), model.predict(x, verbose=0),
                               atol=1e-6)


# ----------------------------------------------------------------------------- errors
def test_a_directory_is_named_as_one(tmp_path):
    folder = tmp_path / "saved_model"
    folder.mkdir()
    with pytest.raises(SavingError, match=r"saved_model' is a directory"):
        lamina.load_model(folder)
    with pytest.raises(SavingError, match=r"saved_model' is a directory"):
        _model().load_weights(folder)


def test_a_damaged_h5_is_a_saving_error_in_the_users_terms(tmp_path):
    path = tmp_path / "cut.weights.h5"
    _model().save_weights(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SavingError, match=r"cut\.weights\.h5.*not a readable HDF5 file"):
        _model(1).load_weights(path)


def test_an_archive_of_the_wrong_kind_is_named(tmp_path):
    path = tmp_path / "other.keras"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "hello")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(SavingError, match=r"other\.keras.*not a lamina or Keras model file"):
        lamina.load_model(path)
