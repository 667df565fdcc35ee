"""Training checkpoints: everything a run needs to continue bitwise as if never interrupted.

A checkpoint is a .lamina archive (kind "checkpoint") holding the weights, the optimizer state,
where training stood (epoch, and steps done in it), the random number generators' states (torch's,
numpy's and Python's) both now and at the start of the current epoch — the epoch's shuffle is
drawn from the latter, so a run resumed mid-epoch draws the same order and skips the batches
already trained on — and the epoch's metric accumulators. It is written atomically.
"""

from __future__ import annotations

import copy
import math
import os
import random

import numpy as np
import torch

from lamina.saving import archive, compile_state, native, weights
from lamina.saving.errors import SavingError


def capture_rng() -> dict:
    """The states of torch's (CPU and CUDA), numpy's and Python's global generators."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": (kind, keys.copy(), position, has_gauss, gauss),
             "python": (version, list(python_state), python_gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def apply_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, python_state, python_gauss = state["python"]
    random.setstate((version, tuple(python_state), python_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _split_rng(prefix, state, tensors) -> dict:
    """JSON-able part of an RNG state; its tensors go into `tensors` under `prefix`."""
    kind, keys, position, has_gauss, gauss = state["numpy"]
    tensors[f"{prefix}/torch"] = state["torch"].clone()
    tensors[f"{prefix}/numpy"] = torch.from_numpy(keys.astype(np.int64))
    for i, t in enumerate(state.get("cuda", [])):
        tensors[f"{prefix}/cuda/{i}"] = t.clone()
    return {"numpy": [kind, int(position), int(has_gauss), float(gauss)],
            "python": [state["python"][0], state["python"][1], state["python"][2]],
            "cuda": len(state.get("cuda", []))}


def _join_rng(prefix, plain, tensors) -> dict:
    kind, position, has_gauss, gauss = plain["numpy"]
    state = {"torch": tensors[f"{prefix}/torch"].to(torch.uint8),
             "numpy": (kind, tensors[f"{prefix}/numpy"].numpy(), position, has_gauss, gauss),
             "python": tuple(plain["python"])}
    if plain.get("cuda"):
        state["cuda"] = [tensors[f"{prefix}/cuda/{i}"] for i in range(plain["cuda"])]
    return state


def _split_state(prefix, state, tensors) -> dict:
    """JSON-able part of a callback's state: numbers (None for infinities), and for a dict of
    tensors the list of its names, its tensors going into `tensors` under `prefix`."""
    plain = {}
    for key, value in state.items():
        if isinstance(value, dict):
            for name, tensor in value.items():
                tensors[f"{prefix}/{key}/{name}"] = tensor.detach().cpu().contiguous().clone()
            plain[key] = list(value)
        elif value is None or isinstance(value, (int, np.integer)):
            plain[key] = value if value is None else int(value)
        else:
            plain[key] = float(value) if math.isfinite(value) else None
    return plain


def _join_state(prefix, plain, tensors) -> dict:
    return {key: {name: tensors[f"{prefix}/{key}/{name}"] for name in value}
            if isinstance(value, list) else value for key, value in plain.items()}


def _metric_objects(model) -> list:
    specs = getattr(model, "_outputs_spec", None) or []
    trackers = [getattr(model, "_loss_tracker", None), *getattr(model, "_output_loss_trackers", [])]
    return [m for m in trackers if m is not None] + [m for s in specs for m in s.metrics or []]


def _metric_tensors(model) -> dict:
    return {f"metric/{i}/{name}": value.detach().cpu().clone()
            for i, m in enumerate(_metric_objects(model))
            for name, value in vars(m).items() if isinstance(value, torch.Tensor)}


def _restore_metrics(model, tensors) -> None:
    for i, m in enumerate(_metric_objects(model)):
        for name, value in vars(m).items():
            saved = tensors.get(f"metric/{i}/{name}")
            if isinstance(value, torch.Tensor) and saved is not None and saved.shape == value.shape:
                setattr(m, name, saved.to(value.device, value.dtype))


def save_checkpoint(model, path, epoch: int, step: int, epoch_start_rng: dict,
                    callback_states=()) -> None:
    """Write the training state at `step` steps into epoch `epoch` (step 0: at its start), with
    `callback_states`: (name, {key: value}) pairs of the callbacks that keep a state, a value
    being a number, None or a dict of tensors (such as EarlyStopping's best weights)."""
    tensors = {}
    progress = {"epoch": int(epoch), "step": int(step),
                "rng": _split_rng("rng", capture_rng(), tensors),
                "epoch_start_rng": _split_rng("epoch_start_rng", epoch_start_rng, tensors),
                "callbacks": [[name, _split_state(f"callback/{i}", state, tensors)]
                              for i, (name, state) in enumerate(callback_states)]}
    tensors.update(_metric_tensors(model))
    entries = {"metadata.json": native._metadata("checkpoint"),
               **native.state_entries(model, include_optimizer=True),
               "progress.json": archive.dumps(progress),
               "progress.safetensors": weights.to_bytes(tensors)}
    archive.write_archive(path, entries)


class Resume:
    """A loaded checkpoint's progress: where to continue, the generator states to set, and the
    saved states of the callbacks."""

    def __init__(self, epoch, step, rng, epoch_start_rng, metric_tensors, callback_states):
        self.epoch, self.step = epoch, step
        self.rng, self.epoch_start_rng = rng, epoch_start_rng
        self.metric_tensors = metric_tensors
        self.callback_states = callback_states

    def restore_batch_state(self, model) -> None:
        """At the first batch trained after resuming: the generators and the epoch's metrics."""
        apply_rng(self.rng)
        _restore_metrics(model, self.metric_tensors)


def load_checkpoint(model, path) -> Resume:
    """Load weights and optimizer state into `model`; return where training stood.

    All or nothing: the whole file is read and checked — its generator states included — before
    the model changes, and any damage is a SavingError naming the file and what is wrong.
    """
    path = os.fspath(path)
    where = f"'{path}'"
    try:
        with archive.Archive(path, "checkpoint") as zf:
            native._check_metadata(zf, ("checkpoint",))
            model_tensors = weights.from_bytes(zf.read("model.safetensors"), where)
            optimizer_state = None
            if "optimizer.json" in zf and getattr(model, "optimizer", None) is not None:
                optimizer_state = (zf.read_json("optimizer.json"),
                                   weights.from_bytes(zf.read("optimizer.safetensors"), where))
            progress = zf.read_json("progress.json")
            tensors = weights.from_bytes(zf.read("progress.safetensors"), where)
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(f"Cannot load checkpoint {where}: {type(e).__name__}: {e}") from e
    resume = _read_progress(progress, tensors, where)
    _assign_state(model, model_tensors, optimizer_state, where)
    return resume


def _read_progress(progress, tensors, where) -> Resume:
    """The Resume that progress.json and progress.safetensors describe, every part checked."""
    def damaged(what):
        return SavingError(f"Cannot load checkpoint {where}: progress.json is damaged: {what}.")

    if not isinstance(progress, dict):
        raise damaged("it is not a JSON object")
    position = {}
    for key in ("epoch", "step"):
        value = progress.get(key)
        if type(value) is not int or not 0 <= value < 2**53:
            raise damaged(f"'{key}' must be a non-negative integer, not {value!r}")
        position[key] = value
    rng = {prefix: _checked_rng(prefix, progress.get(prefix), tensors, damaged)
           for prefix in ("rng", "epoch_start_rng")}
    states = progress.get("callbacks", [])
    if not isinstance(states, list) or not all(
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], dict) and all(
                value is None or type(value) in (int, float) and math.isfinite(value)
                or isinstance(value, list) and all(
                    f"callback/{i}/{key}/{name}" in tensors for name in value)
                for key, value in entry[1].items())
            for i, entry in enumerate(states)):
        raise damaged("'callbacks' must be a list of [name, {key: number, or names of tensors "
                      "in progress.safetensors}] pairs")
    return Resume(position["epoch"], position["step"], rng["rng"], rng["epoch_start_rng"],
                  {k: v for k, v in tensors.items() if k.startswith("metric/")},
                  [(name, _join_state(f"callback/{i}", state, tensors))
                   for i, (name, state) in enumerate(states)])


def _checked_rng(prefix, plain, tensors, damaged) -> dict:
    """The generator states saved under `prefix`, tried on the generators (which are then put
    back as they were), so that a state they refuse is found before anything is loaded."""
    try:
        state = _join_rng(prefix, plain, tensors)
        if tensors[f"{prefix}/torch"].dtype != torch.uint8:
            raise ValueError("torch's state is not a byte tensor")
        keys = state["numpy"][1]
        if keys.dtype != np.int64 or keys.shape != (624,) or keys.min() < 0 or keys.max() >= 2**32:
            raise ValueError("numpy's key is not 624 unsigned 32-bit integers")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise damaged(f"the random generator state '{prefix}' is incomplete or of the wrong type "
                      f"({type(e).__name__}: {e})") from e
    current = capture_rng()
    try:
        apply_rng(state)
    except (TypeError, ValueError, OverflowError, RuntimeError, IndexError) as e:
        raise damaged(f"the random generator state '{prefix}' is invalid "
                      f"({type(e).__name__}: {e})") from e
    finally:
        apply_rng(current)
    return state


def _assign_state(model, model_tensors, optimizer_state, where) -> None:
    """Weights and optimizer state into the model, or neither: the weights are checked whole
    before any is copied, and the optimizer is put back as it was if they do not fit."""
    optimizer = model.optimizer if optimizer_state is not None else None
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.parameters())
    torch_optimizer = getattr(optimizer, "torch_optimizer", None)
    before = None if optimizer is None else (
        optimizer._iterations, optimizer._lr,
        None if torch_optimizer is None else copy.deepcopy(torch_optimizer.state_dict()))
    try:
        if optimizer is not None:
            compile_state.restore_optimizer(model, *optimizer_state, where)
        weights.assign(model, model_tensors, where)
    except BaseException:
        if before is not None:
            optimizer._iterations, optimizer._lr, saved = before
            if saved is not None:
                torch_optimizer.load_state_dict(saved)
        raise
