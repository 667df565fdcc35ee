"""A seeded fuzzer over the files lamina reads: model and weights files of every format, damaged and
made hostile by a mutator, loaded through `load_model`, `load_weights` and `load_checkpoint`.

    python -m tests.saving.fuzz_files --cases 10000 --seed 0     # prints a JSON summary

Each case takes one file lamina (or, for legacy .h5, a Keras-shaped writer) wrote, mutates it (byte
flips, truncation, zip members removed/duplicated/replaced, JSON edits, declared shapes and sizes
inflated, HDF5 datasets that store nothing, links, pickle payloads and Lambda bytecode that would
write a canary file), and loads it through one loader. A case passes when the load raised a
SavingError, or succeeded with the file's weights (a harmless mutation). It fails as:

    raw              any other exception type reached the caller
    changed          a load into an existing model raised, and the model was changed
    memory           the case allocated more than the budget (100 MB; RLIMIT_DATA enforces it)
    silent           a damaged lamina-written file loaded with other weights or predictions
    executed         the canary file exists: something from the file ran
    slow             the case took longer than the per-case time limit

Memory: before each case the worker caps its data segment (RLIMIT_DATA, which counts malloc'ed and
mmap'ed memory, torch's and numpy's included) at its current size plus the budget, and measures the
peak resident set (VmHWM, reset through /proc/self/clear_refs) over the case.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import io
import json
import marshal
import os
import pickle
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zipfile

import numpy as np
import torch

import lamina
from lamina import layers
from lamina.saving import SavingError, checkpoint

BUDGET_BYTES = 100 * 2**20
CASE_SECONDS = 10.0
FILE_LIMIT = 2**20  # the memory budget holds for files under 1 MB


class Payload:
    """Unpickling this creates the canary file: proof that something was executed."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


# ----------------------------------------------------------------------------- the corpus
def _mlp(seed):
    lamina.utils.set_random_seed(seed)
    model = lamina.Sequential([layers.Input((6,)), layers.Dense(5, activation="relu"),
                               layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _convnet(seed):
    lamina.utils.set_random_seed(seed)
    inputs = layers.Input((3, 2))
    h = layers.Conv1D(4, 3, padding="same", activation="relu")(inputs)
    h = layers.LSTM(3)(h)
    model = lamina.Model(inputs, layers.Dense(2)(h))
    model.compile("sgd", "mse")
    return model


ARCHITECTURES = {"mlp": (_mlp, (6,)), "convnet": (_convnet, (3, 2))}


def _probe_input(arch):
    return np.linspace(-1, 1, 4 * int(np.prod(ARCHITECTURES[arch][1])), dtype="float32").reshape(
        4, *ARCHITECTURES[arch][1])


def _trained(arch, seed=1):
    model = ARCHITECTURES[arch][0](seed)
    x = _probe_input(arch)
    y = np.array([0, 1, 2, 1])[: len(x)] % (3 if arch == "mlp" else 1)
    model.fit(x, y if arch == "mlp" else np.zeros((4, 2), "float32"), verbose=0, epochs=1)
    return model


def legacy_h5(model, path, edit=None):
    """A legacy Keras .h5 (tf.keras 2 / Keras 3's save(..., .h5)) layout: model_config attribute,
    model_weights/<layer>/<layer>/<weight>:0 datasets listed in weight_names. `edit(entry)` may
    change the Keras config first."""
    import h5py

    from lamina.saving import config, keras_export

    entry = keras_export.keras_entry(config.serialize(model), "fuzz")
    if edit is not None:
        edit(entry)
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(entry).encode()
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            g = group.create_group(layer.name)
            names = [f"{layer.name}/w{i}:0" for i in range(len(layer.get_weights()))]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for name, array in zip(names, layer.get_weights()):
                g.create_dataset(name, data=array)


def make_corpus(folder) -> list[dict]:
    """The files to mutate: (path, architecture, loaders, whether lamina wrote it)."""
    corpus = []
    for arch in ARCHITECTURES:
        model = _trained(arch)
        stem = os.path.join(folder, arch)
        model.save(f"{stem}.lamina")
        model.save(f"{stem}.keras")
        model.save_weights(f"{stem}.weights.h5")
        model.save_weights(f"{stem}.safetensors")
        checkpoint.save_checkpoint(model, f"{stem}.ckpt.lamina", 1, 0, checkpoint.capture_rng())
        legacy_h5(model, f"{stem}.h5")
        for suffix, loaders, ours in (
                (".lamina", ("load_model", "load_weights"), True),
                (".keras", ("load_model", "load_weights"), True),
                (".weights.h5", ("load_weights",), True),
                (".safetensors", ("load_weights",), True),
                (".ckpt.lamina", ("load_checkpoint", "load_weights"), True),
                (".h5", ("load_model", "load_weights"), False)):
            corpus.append({"path": stem + suffix, "arch": arch, "loaders": loaders, "ours": ours,
                           "state": {k: v.clone() for k, v in model.state_dict().items()},
                           "prediction": model.predict(_probe_input(arch), verbose=0)})
    return corpus


# ----------------------------------------------------------------------------- mutations
# Each returns (new bytes, whether it may leave the file harmless) or None when it does not apply.
def _flip(rng, data, ctx):
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 8))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_bytes(rng, data, ctx):
    out = bytearray(data)
    at = rng.randrange(len(out))
    value = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f",
                        struct.pack("<Q", 2**62)))
    out[at:at + len(value)] = value
    return bytes(out[:len(data)])


def _truncate(rng, data, ctx):
    return data[:rng.randrange(len(data))]


def _splice(rng, data, ctx):
    at = rng.randrange(len(data))
    if rng.random() < 0.5:
        return data[:at] + data[at + rng.randrange(1, 64):]
    return data[:at] + os.urandom(rng.randrange(1, 64)) + data[at:]


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _rezip(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as z:
        for name, value in members:
            z.writestr(name, value)
    return buffer.getvalue()


def _zip_members(rng, data, ctx):
    members = _members(data)
    i = rng.randrange(len(members))
    op = rng.choice(("remove", "duplicate", "replace", "empty", "pickle", "extra_pickle",
                     "deflate", "swap"))
    name, value = members[i]
    if op == "remove":
        del members[i]
    elif op == "duplicate":
        members.append((name, value))
    elif op == "replace":
        members[i] = (name, os.urandom(rng.randrange(1, 2 * len(value) + 2)))
    elif op == "empty":
        members[i] = (name, b"")
    elif op == "pickle":
        members[i] = (name, ctx["pickle"])
    elif op == "extra_pickle":
        members.append((rng.choice(("data.pkl", "archive/data.pkl", "model.pt")), ctx["pickle"]))
    elif op == "deflate":
        return _rezip(members, zipfile.ZIP_DEFLATED)
    else:
        j = rng.randrange(len(members))
        members[i], members[j] = (members[i][0], members[j][1]), (members[j][0], members[i][1])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        return _rezip(members)


def _zip_sizes(rng, data, ctx):
    """Declared sizes in a local or central header raised or lowered, CRCs kept."""
    out = bytearray(data)
    headers = [i for i in range(len(out) - 4) if out[i:i + 4] in (b"PK\x01\x02", b"PK\x03\x04")]
    at = rng.choice(headers)
    field = rng.choice((18, 22) if out[at + 2] == 3 else (20, 24))
    out[at + field:at + field + 4] = struct.pack("<I", rng.choice((0, 1, 2**20, 2**31, 2**32 - 1)))
    return bytes(out)


_bombs = {}


def _bomb(rng, data, ctx):
    """A member replaced by a large run of zeros, deflated: a small file that inflates (each
    distinct archive compressed once, which is what costs time here)."""
    members = _members(data)
    i = rng.randrange(len(members))
    key = (data, i, rng.choice((2**20, 16 * 2**20, 160 * 2**20)))
    if key not in _bombs:
        members[i] = (members[i][0], b"\0" * key[2])
        _bombs[key] = _rezip(members, zipfile.ZIP_DEFLATED)
    return _bombs[key]


def _json_values(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_values(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_values(v, (*path, i))
    if path:
        yield path, value


def _parent(value, path):
    for key in path[:-1]:
        value = value[key]
    return value


def _edit_json(rng, value, ctx):
    """One random edit of a JSON tree: a number inflated or made hostile, a key removed, a
    class renamed, a Lambda with bytecode put in, a shape blown up."""
    paths = list(_json_values(value))
    op = rng.choice(("inflate", "inflate", "hostile", "remove", "retype", "class", "lambda",
                     "shape"))
    wanted = {
        "inflate": lambda p, v: isinstance(v, int) and not isinstance(v, bool),
        "class": lambda p, v: p[-1] == "class_name", "lambda": lambda p, v: p[-1] == "class_name",
        "shape": lambda p, v: isinstance(v, list) and bool(v) and all(
            x is None or isinstance(x, int) for x in v),
    }.get(op, lambda p, v: True)
    targets = [(p, v) for p, v in paths if wanted(p, v)]
    if not targets:
        return value
    path, old = rng.choice(targets)
    parent, key = _parent(value, path), path[-1]
    if op == "inflate":
        parent[key] = old * rng.choice((10, 1000, 10**6)) + rng.choice((0, 1))
    elif op == "hostile":
        parent[key] = rng.choice((-1, 0, 2**31, 2**63, 1e308, float("nan"), None, "", [], {},
                                  [[[[[[]]]]]], "a" * 1000, True, 25000))
    elif op == "remove" and isinstance(parent, dict):
        del parent[key]
    elif op == "retype":
        parent[key] = rng.choice((str(old), [old], {"v": old}))
    elif op == "class":
        parent[key] = rng.choice(("Lambda", "Functional", "Sequential", "Dense", "InputLayer",
                                  "LSTM", "os.system", "TFOpLambda"))
    elif op == "lambda":
        parent.update(class_name="Lambda", config={
            "name": "lam", "function_type": "lambda", "module": "builtins", "arguments": {},
            "function": {"class_name": "__lambda__", "config": {
                "code": ctx["bytecode"], "defaults": None, "closure": None}}})
    elif op == "shape":
        parent[key] = [None if x is None else rng.choice((25000, 40000, 10**6, 10**9)) for x in old]
    return value


def _safetensors_header(rng, data, ctx):
    """A safetensors header edited: shapes inflated, dtypes or offsets changed, metadata
    dropped (the digest with it) or garbled."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return None
    entry = header[rng.choice(names)]
    op = rng.choice(("shape", "dtype", "offsets", "metadata", "digest"))
    if op == "shape":
        entry["shape"] = [rng.choice((25000, 40000, 10**6, 2**31)) for _ in entry["shape"] or [0]]
    elif op == "dtype":
        entry["dtype"] = rng.choice(("F64", "F16", "I64", "BOOL", "U8", "X"))
    elif op == "offsets":
        entry["data_offsets"] = [0, rng.choice((0, 4, 2**31, 2**62))]
    elif op == "metadata":
        header.pop("__metadata__", None)
    else:
        header.setdefault("__metadata__", {})["lamina_digest"] = "0" * 64
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + length:]


def _h5_edit(rng, data, ctx):
    """An HDF5 file edited with h5py: a dataset removed, replaced by one that stores nothing
    (a fill-value "bomb") or by a compressed one, NaN written in, a link or an external
    dataset added, the model config edited."""
    import h5py

    with tempfile.NamedTemporaryFile(suffix=".h5", dir=ctx["folder"], delete=False) as tmp:
        tmp.write(data)
    try:
        with h5py.File(tmp.name, "r+") as f:
            datasets = []
            f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset) else None)
            name = rng.choice(datasets)
            parent, leaf = os.path.split(name)
            group = f[parent] if parent else f
            old = f[name]
            op = rng.choice(("remove", "fill", "fill", "compressed", "nan", "inf", "soft",
                             "external", "config", "dtype"))
            if op == "remove":
                del group[leaf]
            elif op in ("fill", "compressed"):
                shape = tuple(rng.choice((25000, 40000, 10**5)) for _ in (old.shape or (1,)))
                del group[leaf]
                group.create_dataset(leaf, shape=shape, dtype="f4", chunks=True,
                                     **({"compression": "gzip"} if op == "compressed" else {}))
            elif op in ("nan", "inf"):
                value = np.asarray(old[()]).copy()
                if value.size and value.dtype.kind == "f":
                    value.reshape(-1)[rng.randrange(value.size)] = np.nan if op == "nan" else np.inf
                    old[...] = value
                    if "lamina_digest" in f.attrs:
                        from lamina.saving import keras_import, weights

                        # recompute the digest: the file says it holds these values on purpose
                        found = {}
                        f.visititems(lambda n, o: found.__setitem__(n, o)
                                     if isinstance(o, h5py.Dataset) else None)
                        f.attrs["lamina_digest"] = np.bytes_(weights.digest(found))
                        del keras_import
            elif op == "soft":
                del group[leaf]
                group[leaf] = h5py.SoftLink("/" + rng.choice(datasets))
            elif op == "external":
                del group[leaf]
                group[leaf] = h5py.ExternalLink("/etc/hostname", "/x")
            elif op == "dtype":
                value = np.asarray(old[()])
                del group[leaf]
                group.create_dataset(leaf, data=value.astype(rng.choice(("f8", "f2", "i4"))))
            elif "model_config" in f.attrs:
                entry = json.loads(f.attrs["model_config"])
                f.attrs["model_config"] = json.dumps(_edit_json(rng, entry, ctx)).encode()
            else:
                return None
        with open(tmp.name, "rb") as g:
            return g.read()
    finally:
        os.unlink(tmp.name)


def _nan_safetensors(rng, data, ctx):
    """NaN in a weight, with a matching digest: only the finiteness check can refuse it."""
    from lamina.saving import weights

    tensors = weights.from_bytes(data, "fuzz")
    floats = [k for k, v in tensors.items() if v.is_floating_point() and v.numel()]
    t = tensors[rng.choice(floats)]
    t.view(-1)[rng.randrange(t.numel())] = rng.choice((float("nan"), float("inf")))
    return weights.to_bytes(tensors, metadata={"format": "lamina"})


def _in_member(suffix, edit, doc):
    """A mutation of a zip archive: `edit` applied to one entry whose name ends with `suffix`."""
    def mutation(rng, data, ctx):
        members = _members(data)
        candidates = [i for i, (name, _) in enumerate(members) if name.endswith(suffix)]
        if not candidates:
            return None
        i = rng.choice(candidates)
        edited = edit(rng, members[i][1], ctx)
        if edited is None:
            return None
        members[i] = (members[i][0], edited)
        return _rezip(members)

    mutation.__name__ = f"{edit.__name__}_in{suffix.replace('.', '_')}"
    mutation.__doc__ = doc
    return mutation


def _json_bytes(rng, data, ctx):
    return json.dumps(_edit_json(rng, json.loads(data), ctx)).encode()


_zip_json = _in_member(".json", _json_bytes, "A JSON entry edited (CRC recomputed).")
_zip_safetensors = _in_member(".safetensors", _safetensors_header, "A safetensors header edited.")
_zip_h5 = _in_member(".h5", _h5_edit, "The HDF5 weights of a .keras archive edited.")
_zip_nan = _in_member("model.safetensors", _nan_safetensors, "NaN in the weights, digest right.")


def _whole_payload(rng, data, ctx):
    return rng.choice((ctx["pickle"], ctx["torch_pickle"], b"", b"PK\x05\x06" + b"\0" * 18))


BYTE_MUTATIONS = [_flip, _flip, _set_bytes, _truncate, _splice]
MUTATIONS = {
    "zip": BYTE_MUTATIONS + [_zip_members, _zip_members, _zip_sizes, _bomb, _zip_json, _zip_json,
                             _zip_json, _zip_safetensors, _zip_nan, _zip_h5, _whole_payload],
    "h5": BYTE_MUTATIONS + [_h5_edit, _h5_edit, _h5_edit, _whole_payload],
    "safetensors": BYTE_MUTATIONS + [_safetensors_header, _safetensors_header, _nan_safetensors,
                                     _whole_payload],
}
# Mutations that rewrite a file consistently (checksums and digests recomputed): a success is
# judged by its weights only, not as damage that slipped through.
_REWRITES = {_zip_json, _h5_edit, _zip_h5}


def _format(path):
    return "zip" if path.endswith((".lamina", ".keras")) else (
        "h5" if path.endswith(".h5") else "safetensors")


# ----------------------------------------------------------------------------- running
def _status(key) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def _release_free_memory() -> None:
    """Give the C heap's free pages back, so that a case's allocations are counted from what is
    live, not hidden in memory an earlier case freed."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Timeout(BaseException):
    """Raised by the per-case alarm (a BaseException, so no loader's `except Exception` eats it)."""


def _on_alarm(signum, frame):
    raise _Timeout


def _caused_by_memory(error) -> bool:
    while error is not None:
        if isinstance(error, MemoryError) or "can't allocate memory" in str(error) or (
                "std::bad_alloc" in str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _same_state(model, state) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


_targets = {}


def _target(base):
    """A model of the base file's architecture with other weights, to load into (one per
    architecture, set back to the same weights before each case)."""
    arch = base["arch"]
    if arch not in _targets:
        model = ARCHITECTURES[arch][0](seed=7)
        model.predict(_probe_input(arch), verbose=0)
        _targets[arch] = (model, {k: v.clone() for k, v in model.state_dict().items()})
    model, state = _targets[arch]
    model.load_state_dict(state)
    return model


def run_case(base, loader, path, rewrite):
    """Load `path` with `loader`; returns (outcome, detail). `rewrite`: the mutation rewrote the
    file consistently, so only its weights, not the model's predictions, must be the original's."""
    target = _target(base) if loader != "load_model" else None
    before = {k: v.clone() for k, v in target.state_dict().items()} if target is not None else None
    try:
        if loader == "load_model":
            loaded = lamina.load_model(path)
        elif loader == "load_weights":
            target.load_weights(path)
            loaded = target
        else:
            checkpoint.load_checkpoint(target, path)
            loaded = target
    except _Timeout:
        return "slow", ""
    except Exception as e:
        if _caused_by_memory(e):
            return "memory", str(e)[:300]
        if not isinstance(e, SavingError):
            return "raw", f"{type(e).__name__}: {e}"[:300] + " @ " + "|".join(
                traceback.format_exc().splitlines()[-6:-1:2])[:400]
        if target is not None and not _same_state(target, before):
            return "changed", str(e)[:300]
        return "refused", ""
    if not base["ours"]:
        return "loaded", ""
    same = _same_state(loaded, base["state"])
    if same and loader == "load_model" and not rewrite:
        same = np.array_equal(loaded.predict(_probe_input(base["arch"]), verbose=0),
                              base["prediction"], equal_nan=True)
    return ("loaded", "") if same else ("silent", "weights or predictions differ")


def payloads(folder) -> dict:
    """What the mutations put in: pickles and Lambda bytecode that would write the canary file."""
    canary = os.path.join(folder, "canary")
    buffer = io.BytesIO()
    torch.save({"weights": Payload(canary)}, buffer)
    code = compile(f"open({canary!r}, 'w')", "<fuzz>", "exec")
    return {"folder": folder, "canary": canary, "pickle": pickle.dumps(Payload(canary)),
            "torch_pickle": buffer.getvalue(),
            "bytecode": base64.b64encode(marshal.dumps(code)).decode()}


def fuzz(cases: int, seed: int, folder, corpus=None, budget=BUDGET_BYTES,
         case_seconds=CASE_SECONDS) -> dict:
    """Run `cases` seeded cases over `corpus` (default: make_corpus(folder)); the summary."""
    torch.set_num_threads(1)
    ctx = payloads(folder)
    canary = ctx["canary"]
    corpus = corpus or make_corpus(folder)
    originals = {}
    for base in corpus:  # every unmutated file loads, and warms up what the loaders import
        with open(base["path"], "rb") as f:
            originals[base["path"]] = f.read()
        for loader in base["loaders"]:
            outcome, detail = run_case(base, loader, base["path"], False)
            assert outcome == "loaded", (base["path"], loader, outcome, detail)
    counts, examples, peak, peak_case, slowest = {}, {}, 0, None, 0.0
    can_measure = _reset_peak()
    signal.signal(signal.SIGALRM, _on_alarm)
    started, cpu_started = time.perf_counter(), time.process_time()
    for case in range(cases):
        rng = random.Random(seed * 1_000_003 + case)
        base = rng.choice(corpus)
        loader = rng.choice(base["loaders"])
        mutation = rng.choice(MUTATIONS[_format(base["path"])])
        data = originals[base["path"]]
        try:
            mutated = mutation(rng, data, ctx)
        except Exception:
            mutated = None
        if mutated is None:
            mutated = _flip(rng, data, ctx)
            mutation = _flip
        path = os.path.join(folder, "case" + base["path"][len(os.path.join(folder, base["arch"])):])
        with open(path, "wb") as f:
            f.write(mutated)
        small = len(mutated) < FILE_LIMIT
        _release_free_memory()
        limit = _status("VmData") + budget
        if small:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
        rss = _status("VmRSS")
        if can_measure:
            _reset_peak()
        signal.setitimer(signal.ITIMER_REAL, case_seconds)
        t0 = time.perf_counter()
        try:
            outcome, detail = run_case(base, loader, path, mutation in _REWRITES)
        except _Timeout:
            outcome, detail = "slow", ""
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, elapsed)
        if elapsed > case_seconds:  # the alarm may land where torch turns it into another error
            outcome, detail = "slow", f"{elapsed:.1f} s"
        if small and can_measure and _status("VmHWM") - rss > peak:
            peak = _status("VmHWM") - rss
            peak_case = {"case": case, "file": os.path.basename(base["path"]), "loader": loader,
                         "mutation": mutation.__name__, "outcome": outcome}
        if os.path.exists(canary):
            outcome, detail = "executed", "the canary file was written"
            os.unlink(canary)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome not in ("refused", "loaded"):
            examples.setdefault(outcome, []).append(
                {"case": case, "file": os.path.basename(base["path"]), "loader": loader,
                 "mutation": mutation.__name__, "detail": detail})
    return {"cases": cases, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "counts": counts, "max_peak_rss_mb": round(peak / 2**20, 1) if can_measure else None,
            "peak_case": peak_case,
            "slowest_case_s": round(slowest, 2), "budget_mb": budget // 2**20,
            "failures": {k: v[:20] for k, v in examples.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=int(os.environ.get("LAMINA_FUZZ_CASES", 2000)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        summary = fuzz(args.cases, args.seed, folder)
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
