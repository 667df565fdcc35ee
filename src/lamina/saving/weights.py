"""Model weights as safetensors: the model's `state_dict` (names and torch layouts as torch keeps
them), so a saved file also loads with `safetensors.torch.load_file` + `load_state_dict`.

safetensors holds only a JSON header and raw little-endian tensor bytes: reading one never runs
code. Every file lamina writes carries a SHA-256 digest of its tensors in the header's metadata
("lamina_digest"), checked on reading, so damage that still parses (a flipped bit in a weight) is
an error, not a slightly different model; files from before the digest load as they are. Loading
checks every name, shape and dtype against the model, and that the weights are finite, before
copying anything.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import struct

import numpy as np
import safetensors.torch
import torch

from lamina.saving.errors import SavingError

DIGEST_KEY = "lamina_digest"
# Written beside the digest in raw .safetensors files (entries of a zip archive have its CRC, and one
# metadata key keeps them byte-for-byte reproducible: safetensors orders several keys at random).
# A file with this key but no digest had its header damaged: a flipped byte in the digest's key
# would otherwise pass for a file from before digests.
DIGEST_COMPANION = ("lamina_digest_of", "sha256 of tensor names, dtypes, shapes and bytes")
_nonfinite_allowed = contextvars.ContextVar("lamina_allow_nonfinite", default=False)


def model_tensors(model) -> dict[str, torch.Tensor]:
    """The model's state_dict, detached, contiguous and on the CPU; tied tensors copied apart
    (safetensors stores each tensor once)."""
    tensors, seen = {}, set()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if t.numel() and key in seen:
            t = t.clone()
        seen.add(key)
        tensors[name] = t
    return tensors


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def digest(arrays) -> str:
    """SHA-256 of named arrays (torch tensors or numpy arrays): names, dtypes, shapes and bytes,
    in name order, so that any change to what a file holds changes it."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            dtype, raw = str(value.dtype).removeprefix("torch."), value.reshape(-1).view(torch.uint8)
            raw = raw.numpy()
        else:
            value = np.ascontiguousarray(value)
            dtype, raw = value.dtype.str, value.reshape(-1).view(np.uint8)
        h.update(json.dumps([name, dtype, list(value.shape)]).encode())
        h.update(memoryview(raw))
    return h.hexdigest()


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return safetensors.torch.save(tensors, metadata={**(metadata or {}), DIGEST_KEY: digest(tensors)})


def from_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, their digest checked when the file carries one."""
    try:
        tensors = safetensors.torch.load(data)
    except Exception as e:  # safetensors reports a bad header or layout with its own error types
        raise SavingError(f"{where}: the tensor data is not valid safetensors ({e}).") from e
    metadata = _metadata(data)
    expected = metadata.get(DIGEST_KEY)
    if expected is None and DIGEST_COMPANION[0] in metadata:
        raise SavingError(f"{where}: the header's metadata is damaged (the digest of the weights "
                          "is not where lamina writes it).")
    if expected is not None and expected != digest(tensors):
        raise SavingError(
            f"{where}: the weights do not match the digest written with them: the file was "
            "damaged (or edited) after lamina wrote it."
        )
    return tensors


def _metadata(data: bytes) -> dict:
    """The `__metadata__` of a safetensors header (safetensors.torch.load has parsed it already)."""
    (length,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + length]).get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}


@contextlib.contextmanager
def nonfinite_allowed(allow: bool):
    """Within this block, loads accept NaN and infinite weights (load_model(allow_nonfinite=True))."""
    token = _nonfinite_allowed.set(bool(allow))
    try:
        yield
    finally:
        _nonfinite_allowed.reset(token)


def check_finite(arrays, where: str) -> None:
    """Refuse NaN or infinite values among named arrays (torch tensors or numpy arrays), unless
    the load was asked to allow them: a model with them predicts NaN."""
    if _nonfinite_allowed.get():
        return
    for name, value in arrays.items():
        value = torch.as_tensor(value)
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            raise SavingError(
                f"{where}: weight '{name}' holds NaN or infinite values; a model with them predicts "
                "NaN. Pass allow_nonfinite=True to load it anyway."
            )


def assign(model, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy `tensors` into the model's state, after checking that they match it exactly."""
    state = model.state_dict()
    missing = [k for k in state if k not in tensors]
    unexpected = [k for k in tensors if k not in state]
    if missing or unexpected:
        raise SavingError(
            f"{where}: the weights do not match the model: "
            + "; ".join(part for part in (
                f"missing {_few(missing)}" if missing else "",
                f"unexpected {_few(unexpected)}" if unexpected else "") if part)
            + ". The model's architecture differs from the one these weights were saved from."
        )
    for name, target in state.items():
        value = tensors[name]
        if tuple(value.shape) != tuple(target.shape) or value.dtype != target.dtype:
            raise SavingError(
                f"{where}: weight '{name}' is {tuple(value.shape)} {value.dtype} in the file, but "
                f"the model expects {tuple(target.shape)} {target.dtype}."
            )
    check_finite(tensors, where)
    with torch.no_grad():
        for name, target in state.items():
            target.copy_(tensors[name])


@contextlib.contextmanager
def restored_on_error(model):
    """Put the model's state back as it was if the block raises: for loads that assign layer by
    layer (through set_weights, in Keras' layouts) after every array was read and checked."""
    saved = {name: t.detach().clone() for name, t in model.state_dict().items()}
    try:
        yield
    except BaseException:
        with torch.no_grad():
            for name, target in model.state_dict().items():
                target.copy_(saved[name])
        raise


def _few(names, n=5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")
