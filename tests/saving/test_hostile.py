"""Hostile and broken files: every outcome is a loaded model or a SavingError; nothing in a file is
ever executed, and memory stays bounded by the file's size."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamina
from lamina import layers
from lamina.saving import SavingError
from tests.saving.fuzz_files import Payload


def _valid_file(path):
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="relu"),
                               layers.BatchNormalization(), layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 4), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return _valid_file(tmp_path_factory.mktemp("valid") / "m.lamina")


def _entries(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(entries: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _load(tmp_path, data, name="m.lamina"):
    path = tmp_path / name
    path.write_bytes(data)
    return lamina.load_model(path)


def test_pickle_payloads_are_never_executed(tmp_path, valid):
    marker = tmp_path / "executed"
    payload = pickle.dumps(Payload(marker))
    torch_file = io.BytesIO()
    torch.save({"weights": Payload(marker)}, torch_file)
    entries = _entries(valid)
    cases = {
        "raw.lamina": payload,
        "torch.pt": torch_file.getvalue(),
        "weights.lamina": _zip({**entries, "model.safetensors": payload}),
        "config.lamina": _zip({**entries, "config.json": payload}),
        "extra.lamina": _zip({**entries, "data.pkl": payload}),
    }
    for name, data in cases.items():
        with pytest.raises(SavingError):
            _load(tmp_path, data, name)
        with pytest.raises(SavingError):
            model = lamina.Sequential([layers.Input((4,)), layers.Dense(3)])
            model.load_weights(tmp_path / name)
    assert not marker.exists()


def test_truncated_files(tmp_path, valid):
    for cut in (0, 1, 10, 100, len(valid) // 3, len(valid) // 2, len(valid) - 30, len(valid) - 1):
        with pytest.raises(SavingError):
            _load(tmp_path, valid[:cut])


def test_a_flipped_byte_in_any_entry_is_caught(tmp_path, valid):
    """Every entry is CRC-checked, so damage inside the data is always an error."""
    with zipfile.ZipFile(io.BytesIO(valid)) as z:
        spans = [(i.header_offset + 30 + len(i.filename), i.file_size) for i in z.infolist()]
    for start, size in spans:
        for offset in (0, size // 2, size - 1):
            damaged = bytearray(valid)
            damaged[start + offset] ^= 0x41
            with pytest.raises(SavingError, match="corrupted|not valid"):
                _load(tmp_path, bytes(damaged))


def test_zip_bombs_are_refused_before_inflating(tmp_path, valid):
    entries = _entries(valid)
    huge = b"\0" * (64 * 2**20)
    with pytest.raises(SavingError, match="zip bomb"):
        _load(tmp_path, _zip({**entries, "model.safetensors": huge}, zipfile.ZIP_DEFLATED))
    with pytest.raises(SavingError, match="zip bomb"):  # a Keras-shaped archive may deflate
        _load(tmp_path, _zip({"config.json": b" " * (65 * 2**20), "model.weights.h5": b""},
                             zipfile.ZIP_DEFLATED), "bomb.keras")
    # A stored entry that declares 4 GB: the directory claims more than the file holds.
    declared = bytearray(valid)
    at = declared.find(b"PK\x01\x02")
    declared[at + 24:at + 28] = struct.pack("<I", 0xFFFFFFF0)
    with pytest.raises(SavingError, match="declares"):
        _load(tmp_path, bytes(declared))
    many = _zip({**entries, **{f"pad{i}": b"" for i in range(40)}})
    with pytest.raises(SavingError, match="entries"):
        _load(tmp_path, many)


def _with_config(valid, edit):
    entries = _entries(valid)
    config = json.loads(entries["config.json"])
    edit(config)
    return _zip({**entries, "config.json": json.dumps(config).encode()})


@pytest.mark.parametrize("class_name, registered, needle", [
    ("Evil", None, "'Evil', which lamina does not know"),
    ("os.system", None, "os.system"),
    ("system", "os>system", "os>system"),
    ("eval", "builtins>eval", "builtins>eval"),
    ("Dense", "Custom>Dense", "Custom>Dense"),  # a registered name must not fall back on Dense
])
def test_configs_naming_unknown_classes_or_import_paths(tmp_path, valid, class_name, registered,
                                                        needle):
    def edit(config):
        layer = config["config"]["layers"][1]
        layer.update(class_name=class_name, registered_name=registered, module="os")

    with pytest.raises(SavingError, match=needle):
        _load(tmp_path, _with_config(valid, edit))


def test_tensor_shapes_must_match_the_config(tmp_path, valid):
    entries = _entries(valid)
    tensors = safetensors.torch.load(entries["model.safetensors"])
    name = next(k for k in tensors if k.endswith("kernel"))
    tensors[name] = torch.zeros(7, 7)
    bad = _zip({**entries, "model.safetensors": safetensors.torch.save(tensors)})
    with pytest.raises(SavingError, match=rf"'{name}' is \(7, 7\)"):
        _load(tmp_path, bad)
    del tensors[name]
    with pytest.raises(SavingError, match="missing"):
        _load(tmp_path, _zip({**entries, "model.safetensors": safetensors.torch.save(tensors)}))


def test_a_config_larger_than_its_weights_allocates_nothing(tmp_path, valid):
    """A config asking for 160 GB of weights is refused from a dry build on torch's meta device."""
    def edit(config):
        config["config"]["layers"][1]["config"]["units"] = 10**10

    with pytest.raises(SavingError, match=r"layer .dense. \(Dense\) would create a tensor of "
                                          r"shape \(4, 10000000000\)"):
        _load(tmp_path, _with_config(valid, edit))


@pytest.mark.parametrize("edit", [
    lambda c: c["config"]["layers"][1]["config"].update(units="many"),
    lambda c: c["config"]["layers"][1]["config"].update(activation="rm -rf"),
    lambda c: c["config"]["layers"][0]["config"].update(shape=[-3]),
    lambda c: c["config"].update(layers={"not": "a list"}),
    lambda c: c.update(config=[1, 2, 3]),
    lambda c: c["config"]["layers"][1]["config"].update(unexpected=True),
])
def test_malformed_configs(tmp_path, valid, edit):
    with pytest.raises(SavingError):
        _load(tmp_path, _with_config(valid, edit))


def test_deeply_nested_json(tmp_path, valid):
    entries = _entries(valid)
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(SavingError, match="not valid JSON"):
        _load(tmp_path, _zip({**entries, "config.json": deep}))


def test_newer_format_versions_are_refused(tmp_path, valid):
    entries = _entries(valid)
    meta = json.loads(entries["metadata.json"])
    meta["format_version"] = 99
    with pytest.raises(SavingError, match="upgrade lamina"):
        _load(tmp_path, _zip({**entries, "metadata.json": json.dumps(meta).encode()}))


# ----------------------------------------------------------------------------- fuzzing
# About a thousand mutated files in CI; LAMINA_FUZZ_EXAMPLES=5000 for a longer local run.
FUZZ = settings(max_examples=int(os.environ.get("LAMINA_FUZZ_EXAMPLES", 350)), deadline=None,
                derandomize="LAMINA_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _outcome(tmp_path, data, name="fuzz.lamina"):
    """A loaded model, or lamina's own error — anything else fails the test."""
    try:
        return _load(tmp_path, data, name)
    except SavingError:
        return None


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1,
                      max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 2**31)))
def test_fuzz_byte_mutations(tmp_path, valid, flips, cut):
    data = bytearray(valid)
    for position, xor in flips:
        data[position % len(data)] ^= xor
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    _outcome(tmp_path, bytes(data))


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) |
                     st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


@FUZZ
@given(data=st.data())
def test_fuzz_config_mutations(tmp_path, valid, data):
    """Well-formed archives (CRCs right) whose config has one value replaced: deeper than bytes."""
    entries = _entries(valid)
    config = json.loads(entries["config.json"])
    path = data.draw(st.sampled_from(list(_paths(config))[1:]))
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_json)
    _outcome(tmp_path, _zip({**entries, "config.json": json.dumps(config).encode()}))


@FUZZ
@given(name=st.sampled_from(["model.safetensors", "optimizer.safetensors", "optimizer.json",
                             "compile.json", "metadata.json"]),
       position=st.integers(0, 2**31), junk=st.binary(min_size=1, max_size=16))
def test_fuzz_entry_contents(tmp_path, valid, name, position, junk):
    """Well-formed archives with one entry's bytes overwritten (safetensors headers included)."""
    entries = _entries(valid)
    blob = bytearray(entries[name])
    at = position % (len(blob) + 1)
    blob[at:at + len(junk)] = junk
    model = _outcome(tmp_path, _zip({**entries, name: bytes(blob)}))
    if model is not None:
        assert isinstance(model, lamina.Sequential)
