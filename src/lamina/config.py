"""Where lamina computes: the device that `fit`, `evaluate` and `predict` put models and data on.

By default that is the first accelerator torch sees (CUDA, else Apple's MPS), else the CPU; under
`torchrun` on GPUs, each process takes the GPU of its local rank. `set_device` overrides the
choice for the whole program, and `fit(..., device=...)` for one call. A model whose weights the
user has already put on an accelerator stays there.

Example:
    >>> lamina.config.set_device("cpu")        # e.g. to debug on the CPU of a GPU machine
    >>> lamina.config.get_device()
    device(type='cpu')
    >>> lamina.config.set_device(None)         # back to the automatic choice

Also here: `set_num_threads` (the thread count of lamina's loops; see lamina/threads.py) and
`tune_malloc` (glibc's malloc keeping freed memory, an opt-in; see lamina/_memory.py).
"""

from __future__ import annotations

import functools
import os

import torch

from lamina._memory import tune_malloc
from lamina.mixed_precision import global_policy as dtype_policy
from lamina.mixed_precision import set_global_policy as set_dtype_policy
from lamina.threads import get_num_threads, set_num_threads

__all__ = ["set_device", "get_device", "resolve_device", "placement", "set_dtype_policy", "dtype_policy",
           "set_num_threads", "get_num_threads", "tune_malloc"]

_chosen: torch.device | None = None


def _accelerator_count(kind: str) -> int:
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    return 0


def resolve_device(device) -> torch.device:
    """`device` ("cpu", "cuda", "cuda:1", "mps" or a torch.device) as a torch.device, checked to
    exist on this machine; a bare "cuda" under torchrun means the GPU of this process's local rank."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"`device` must name a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps'. "
            f"Received: device={device!r}"
        ) from e
    if resolved.type == "cpu":
        return resolved
    count = _accelerator_count(resolved.type)
    if resolved.type not in ("cuda", "mps") or count == 0:
        raise ValueError(
            f"Device {str(resolved)!r} is not available on this machine (torch sees "
            f"{torch.cuda.device_count()} CUDA device(s), MPS "
            f"{'available' if torch.backends.mps.is_available() else 'unavailable'}). "
            f"Use 'cpu', or set_device(None) for the automatic choice. Received: device={device!r}"
        )
    if resolved.index is None and resolved.type == "cuda":
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % count)
    if resolved.index is not None and resolved.index >= count:
        raise ValueError(
            f"Device {str(resolved)!r} does not exist: this machine has {count} {resolved.type} "
            f"device(s), numbered from 0. Received: device={device!r}"
        )
    return resolved


def set_device(device) -> None:
    """Make `device` where lamina trains and predicts from now on; None restores the automatic
    choice (CUDA, else MPS, else CPU).

    Args:
        device: "cpu", "cuda", "cuda:N", "mps", a torch.device, or None.

    Raises:
        ValueError: the device does not exist on this machine.
    """
    global _chosen
    _chosen = None if device is None else resolve_device(device)


def get_device() -> torch.device:
    """The device lamina uses: the one `set_device` chose, else the automatic choice."""
    if _chosen is not None:
        return _chosen
    return _automatic_device()


@functools.cache
def _automatic_device() -> torch.device:
    # Made once per process: predict asks on every call, and the accelerators torch sees do not
    # change while it runs.
    for kind in ("cuda", "mps"):
        if _accelerator_count(kind):
            return resolve_device(kind)
    return torch.device("cpu")


def placement(current: torch.device, requested=None) -> torch.device:
    """Where `fit`, `evaluate` and `predict` run a model whose weights are on `current`: the
    `requested` device (fit's `device=`) if given, else the one `set_device` chose, else `current`
    when the user put the model on an accelerator, else the automatic choice."""
    if requested is not None:
        return resolve_device(requested)
    if _chosen is not None:
        return _chosen
    return current if current.type != "cpu" else get_device()
