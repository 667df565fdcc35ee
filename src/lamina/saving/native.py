"""The .lamina format: `save_model` / `load_model`, and weights-only `.safetensors` files.

A .lamina file is a zip archive (see archive.py) of stored entries:

    metadata.json          {"format": "lamina", "format_version": 1, "lamina_version": ...}
    config.json            the model, as `config.serialize` describes it
    model.safetensors      the model's state_dict (weights and buffers such as BN statistics)
    compile.json           compile() settings                     } when the model is compiled
    optimizer.json         optimizer step count and param groups  } and include_optimizer=True
    optimizer.safetensors  optimizer slots (moments, ...)         }

Nothing in it is pickled, and loading reads JSON and raw tensor bytes only. `load_model` also
opens Keras 3 `.keras` archives and legacy Keras `.h5` files (see keras_import.py).
"""

from __future__ import annotations

import os

import torch

from lamina.saving import archive, compile_state, config, keras_export, keras_import, weights
from lamina.saving.errors import SavingError

FORMAT = "lamina"
FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ----------------------------------------------------------------------------- writing
def save_model(model, filepath, overwrite=True, include_optimizer=True) -> None:
    """Save a model (architecture, weights, and compile settings + optimizer state) to one
    .lamina file, atomically: an existing file is replaced only once the new one is complete.

    The suffix picks the format, as in Keras: ".lamina" is lamina's own (every layer, and the
    optimizer state); ".keras" is a Keras 3 archive that Keras itself loads (see
    keras_export.py; the optimizer starts afresh there).

    Args:
        model: a lamina Model or Sequential (a subclassed model must be registered with
            `@lamina.saving.register_serializable()` and implement `get_config`).
        filepath: path ending in ".lamina" or ".keras".
        overwrite: whether an existing file may be replaced.
        include_optimizer: also save compile() settings and the optimizer state, so that the
            loaded model continues training exactly where this one stopped.
    """
    path = _target(filepath, (".lamina", ".keras"), "save", "model.save('model.keras')", overwrite)
    if path.endswith(".keras"):
        keras_export.save_keras_archive(model, path, include_optimizer=include_optimizer)
        return
    entries = {"config.json": archive.dumps(config.serialize(model))}
    entries.update(state_entries(model, include_optimizer))
    archive.write_archive(path, {"metadata.json": _metadata("model"), **entries})


def state_entries(model, include_optimizer: bool) -> dict[str, bytes]:
    """The archive entries of a model's weights and, when asked and compiled, of its training
    settings and optimizer state."""
    entries = {"model.safetensors": weights.to_bytes(weights.model_tensors(model))}
    settings = compile_state.compile_config(model) if include_optimizer else None
    if settings is not None:
        entries["compile.json"] = archive.dumps(settings)
        description, tensors = compile_state.optimizer_state(model.optimizer)
        entries["optimizer.json"] = archive.dumps(description)
        entries["optimizer.safetensors"] = weights.to_bytes(tensors)
    return entries


def _metadata(kind: str) -> bytes:
    from lamina import __version__

    return archive.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                          "lamina_version": __version__,
                          "torch_version": torch.__version__.split("+")[0]})


def _target(filepath, suffixes, verb, example, overwrite) -> str:
    path = os.fspath(filepath)
    if not path.endswith(suffixes):
        legacy = " (lamina does not write Keras' legacy .h5 format)" if path.endswith(
            (".h5", ".hdf5")) and not path.endswith(".weights.h5") else ""
        raise SavingError(
            f"{verb}: the file name must end with {' or '.join(suffixes)} (e.g. {example}){legacy}. "
            f"Received: filepath={path!r}"
        )
    if not overwrite and os.path.exists(path):
        raise SavingError(f"{verb}: '{path}' exists and overwrite=False.")
    return path


def save_weights(model, filepath, overwrite=True) -> None:
    """Save the model's weights, atomically: to a ".weights.h5" file in Keras 3's layout (Keras'
    `load_weights` reads it), or to a ".safetensors" file of the model's state_dict (torch's
    names and layouts)."""
    path = _target(filepath, (".weights.h5", ".safetensors"), "save_weights",
                   "model.save_weights('model.weights.h5')", overwrite)
    if not model.built:
        raise SavingError(
            f"save_weights: model '{model.name}' has no weights yet; build it (call it on data, or "
            "give it an Input) first."
        )
    if path.endswith(".weights.h5"):
        keras_export.save_keras_weights(model, path)
        return
    data = weights.to_bytes(weights.model_tensors(model), metadata=_weights_metadata())
    archive.atomic_write(path, lambda f: f.write(data))


def _weights_metadata() -> dict[str, str]:
    from lamina import __version__

    return {"format": FORMAT, "lamina_version": __version__,
            weights.DIGEST_COMPANION[0]: weights.DIGEST_COMPANION[1]}


# ----------------------------------------------------------------------------- reading
def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, allow_nonfinite=False):
    """Load a model saved by `model.save` (.lamina), a Keras 3 archive (.keras) or a legacy
    Keras .h5 file. Reading never runs code from the file: classes are looked up by name among
    lamina's layers and the registered ones, and weights are raw tensor bytes.

    Args:
        filepath: the file.
        custom_objects: {name: class} for custom layers not registered with
            `@lamina.saving.register_serializable()`.
        compile: re-compile the model with the saved settings (and optimizer state).
        safe_mode: must stay True: lamina never loads Python code (Keras' Lambda bytecode)
            from a file.
        allow_nonfinite: load weights that hold NaN or infinite values (by default such a file
            is refused: the model would predict NaN).

    Raises:
        lamina.saving.SavingError: the file is missing, not a model file, corrupted, or describes
            a model that cannot be rebuilt; the message says which.
    """
    if safe_mode is not True:
        raise ValueError(
            "load_model: lamina always loads in safe mode (it never runs code stored in a file), "
            f"so safe_mode must be True. Received: safe_mode={safe_mode!r}"
        )
    path = os.fspath(filepath)
    try:
        with config.custom_object_scope(custom_objects), weights.nonfinite_allowed(allow_nonfinite):
            return _load_any(path, compile)
    except SavingError:
        raise
    except Exception as e:  # whatever a broken file provokes reaches the caller as a SavingError
        raise SavingError(f"Cannot load '{path}': the file is damaged or is not the model file its "
                          f"contents claim to be ({type(e).__name__}: {e}).") from e


def _check_file(path, what) -> None:
    if os.path.isdir(path):
        raise SavingError(
            f"'{path}' is a directory, not a {what}. lamina reads single files (.lamina, .keras, "
            ".h5, .weights.h5, .safetensors); a TensorFlow SavedModel directory is not one of "
            "them: load it in Keras and save it as .keras."
        )
    if not os.path.isfile(path):
        raise SavingError(f"No such {what}: '{path}'.")


def _load_any(path, compile):
    _check_file(path, "model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return keras_import.load_legacy_h5(path, compile)
    if not archive.is_zip(path):
        raise SavingError(
            f"Cannot load '{path}': it is neither a lamina (.lamina) nor a Keras (.keras, .h5) "
            "model file."
        )
    with archive.Archive(path, allow_compressed=True) as zf:
        if "metadata.json" in zf and "model.safetensors" in zf:
            return _load_native(zf, compile)
        if "config.json" in zf and "model.weights.h5" in zf:
            return keras_import.load_keras_archive(zf, compile)
        if any(name.endswith(".pkl") for name in zf.names()):
            raise zf.error("it is a pickle-based archive (torch.save?), which lamina never "
                           "unpickles; save with model.save('x.lamina') instead")
        raise zf.error("it is a zip archive, but not a lamina or Keras model file")


# Every entry a lamina file may hold: anything else (a pickle, say) means the file was not written
# by lamina, and it is refused rather than ignored.
ENTRIES = {"metadata.json", "config.json", "model.safetensors", "compile.json", "optimizer.json",
           "optimizer.safetensors", "progress.json", "progress.safetensors"}


def _check_metadata(zf, kinds) -> None:
    zf.require_stored()
    unknown = sorted(set(zf.names()) - ENTRIES)
    if unknown:
        raise zf.error(f"it holds entries lamina never writes: {unknown}")
    meta = zf.read_json("metadata.json", 1 << 20)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise zf.error("its metadata does not say it is a lamina file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise zf.error(
            f"it was written in format version {version!r}, newer than this lamina reads "
            f"({FORMAT_VERSION}); upgrade lamina"
        )
    if meta.get("kind") not in kinds:
        raise zf.error(f"it holds a {meta.get('kind')!r}, not a {' or '.join(kinds)}")


def _load_native(zf, compile):
    _check_metadata(zf, ("model",))
    entry = zf.read_json("config.json")
    where = f"'{zf.path}'"
    config.check_cost(entry, zf.size("model.safetensors"), where)
    model = config.deserialize(entry, where=f"{where}, config")
    restore_state(model, zf, compile)
    return model


def restore_state(model, zf, compile=True) -> None:
    """Load the weights and, when present and asked for, the compile settings and optimizer
    state written by `state_entries`."""
    where = f"'{zf.path}'"
    tensors = weights.from_bytes(zf.read("model.safetensors"), f"{where}, model.safetensors")
    weights.assign(model, tensors, where)
    if compile and "compile.json" in zf:
        compile_state.restore_compile(model, zf.read_json("compile.json"), where)
        if "optimizer.json" in zf and "optimizer.safetensors" in zf:
            slots = weights.from_bytes(zf.read("optimizer.safetensors"),
                                       f"{where}, optimizer.safetensors")
            compile_state.restore_optimizer(model, zf.read_json("optimizer.json"), slots, where)


def load_weights(model, filepath, skip_mismatch=False, allow_nonfinite=False) -> None:
    """Load weights into a built model from a .safetensors file written by `save_weights`, a
    .lamina file, a Keras 3 `.keras` archive or `.weights.h5` file, or a legacy Keras `.h5`.

    All or nothing: every array is read and checked (names, shapes, finiteness, the file's
    digest) before the first is assigned, so a load that raises leaves the model as it was.
    NaN or infinite weights are refused unless `allow_nonfinite=True`."""
    path = os.fspath(filepath)
    if skip_mismatch:
        raise ValueError("load_weights: skip_mismatch=True is not supported; every weight must match.")
    if not model.built:
        raise SavingError(
            f"load_weights: model '{model.name}' has no weights yet; build it (call it on data, or "
            "give it an Input) before loading weights into it."
        )
    try:
        with weights.nonfinite_allowed(allow_nonfinite):
            _load_weights_any(model, path)
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(f"Cannot load weights from '{path}': the file is damaged or does not "
                          f"hold weights for this model ({type(e).__name__}: {e}).") from e


def _load_weights_any(model, path) -> None:
    _check_file(path, "weights file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        keras_import.load_h5_weights(model, path)
        return
    if archive.is_zip(path):
        with archive.Archive(path, "weights file", allow_compressed=True) as zf:
            if "metadata.json" in zf and "model.safetensors" in zf:
                _check_metadata(zf, ("model", "checkpoint"))
                tensors = weights.from_bytes(zf.read("model.safetensors"), f"'{path}'")
                weights.assign(model, tensors, f"'{path}'")
            elif "model.weights.h5" in zf:
                keras_import.load_archive_weights(model, zf)
            else:
                raise zf.error("it is a zip archive, but holds no lamina or Keras weights")
        return
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read(size)
    weights.assign(model, weights.from_bytes(data, f"'{path}'"), f"'{path}'")
