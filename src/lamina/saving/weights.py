"""Model weights as safetensors: the model's `state_dict` (names and torch layouts as torch keeps
them), so a saved file also loads with `safetensors.torch.load_file` + `load_state_dict`.

safetensors holds only a JSON header and raw little-endian tensor bytes: reading one never runs
code. Loading checks every name, shape and dtype against the model before copying anything.
"""

from __future__ import annotations

import safetensors.torch
import torch

from lamina.saving.errors import SavingError


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


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return safetensors.torch.save(tensors, metadata=metadata)


def from_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except Exception as e:  # safetensors reports a bad header or layout with its own error types
        raise SavingError(f"{where}: the tensor data is not valid safetensors ({e}).") from e


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
    with torch.no_grad():
        for name, target in state.items():
            target.copy_(tensors[name])


def _few(names, n=5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")
