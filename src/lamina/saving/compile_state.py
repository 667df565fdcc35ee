"""Compile settings and optimizer state, so a loaded model continues training where it stopped.

`compile()`'s arguments are saved as names or `{"class_name", "registered_name", "config"}`
entries; the optimizer's torch state (moments, step counts) as tensors plus a JSON description of
its parameter groups. A Python function given to compile (a custom loss, a learning-rate schedule)
cannot be described, so the compile settings are then left out with a warning.
"""

from __future__ import annotations

import warnings

import torch

from lamina import losses, metrics, optimizers
from lamina.saving import registry
from lamina.saving.errors import SavingError


class _NotDescribable(Exception):
    pass


def compile_config(model) -> dict | None:
    """compile()'s arguments as JSON data; None if the model is not compiled or one of them is
    a Python function (a warning says which)."""
    if not getattr(model, "compiled", False):
        return None
    try:
        schedule = getattr(model.optimizer, "_schedule", None)
        if schedule is not None and not isinstance(schedule, optimizers.schedules.LearningRateSchedule):
            raise _NotDescribable("the optimizer's learning_rate schedule (a Python callable)")
        config = {
            "optimizer": _describe(model.optimizer, "optimizer"),
            "loss": _describe(model._loss_arg, "loss"),
            "loss_weights": _describe(model._loss_weights_arg, "loss_weights"),
            "metrics": _describe(model._metrics_arg, "metrics"),
            "weighted_metrics": _describe(model._weighted_metrics_arg, "weighted_metrics"),
        }
        # What cannot be rebuilt now (a wrapped Python function, say) would fail at load time.
        for key, (base, module) in (("optimizer", _KINDS[0]), ("loss", _KINDS[1]),
                                    ("metrics", _KINDS[2]), ("weighted_metrics", _KINDS[2])):
            try:
                _rebuild(config[key], base, module, "")
            except Exception as e:
                raise _NotDescribable(f"{key} {config[key]!r:.60} ({e})") from e
        return config
    except _NotDescribable as e:
        warnings.warn(
            f"Model '{model.name}' is saved without its compile settings and optimizer state: "
            f"{e} cannot be saved. Call compile() again after loading.", stacklevel=3)
        return None


_KINDS = ((optimizers.Optimizer, optimizers), (losses.Loss, losses), (metrics.Metric, metrics))


def _describe(value, what):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, what) for k, v in value.items()}
    for base, module in _KINDS:
        if isinstance(value, base):
            cls = type(value)
            registered = registry.registered_name(cls)
            if registered is None and getattr(module, cls.__name__, None) is not cls:
                raise _NotDescribable(f"{what} {value!r:.60} (an unregistered class)")
            return {"class_name": cls.__name__, "registered_name": registered,
                    "config": _describe(value.get_config(), what)}
    name = getattr(value, "__name__", None)
    for module in (losses, metrics):
        if name and getattr(module, name, None) is value:
            return name
    raise _NotDescribable(f"{what} {value!r:.60} (a Python function)")


def restore_compile(model, config: dict, where: str) -> None:
    """compile() the model with the settings `compile_config` described."""
    if not isinstance(config, dict):
        raise SavingError(f"{where}: the compile settings must be a dict.")
    try:
        model.compile(
            optimizer=_rebuild(config.get("optimizer"), optimizers.Optimizer, optimizers, where),
            loss=_rebuild(config.get("loss"), losses.Loss, losses, where),
            loss_weights=config.get("loss_weights"),
            metrics=_rebuild(config.get("metrics"), metrics.Metric, metrics, where),
            weighted_metrics=_rebuild(config.get("weighted_metrics"), metrics.Metric, metrics, where),
        )
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(f"{where}: could not compile the model with the saved settings: {e}") from e


def _rebuild(value, base, module, where):
    if isinstance(value, list):
        return [_rebuild(v, base, module, where) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        name, registered = value.get("class_name"), value.get("registered_name")
        cls = registry.get_registered_object(registered) if isinstance(registered, str) else None
        if cls is None and isinstance(name, str) and name in getattr(module, "__all__", ()):
            cls = getattr(module, name)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise SavingError(
                f"{where}: the compile settings name the {base.__name__.lower()} class "
                f"'{registered or name}', which lamina does not know. Register it with "
                "@lamina.saving.register_serializable(), or load with compile=False."
            )
        config = value.get("config") or {}
        return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    if isinstance(value, dict):
        return {k: _rebuild(v, base, module, where) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- optimizer state
def optimizer_state(optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    """(JSON description, tensors) of an optimizer's state: step count, moments, param groups."""
    description = {"iterations": optimizer.iterations, "learning_rate": optimizer.learning_rate}
    if optimizer.torch_optimizer is None:
        return description, {}
    state = optimizer.torch_optimizer.state_dict()
    tensors, per_param = {}, {}
    for index, entries in state["state"].items():
        plain = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain[key] = value
        per_param[str(index)] = plain
    description["torch"] = {"state": per_param, "param_groups": state["param_groups"]}
    return description, tensors


def restore_optimizer(model, description: dict, tensors: dict, where: str) -> None:
    """Load an optimizer state saved by `optimizer_state` into the model's (compiled) optimizer."""
    optimizer = model.optimizer
    try:
        optimizer.iterations = int(description["iterations"])
        if optimizer._schedule is None:  # a schedule gives the rate from the iterations
            optimizer.learning_rate = float(description["learning_rate"])
        saved = description.get("torch")
        if saved is None:
            return
        if not optimizer.built:
            optimizer.build(model.parameters())
        params = optimizer._params
        state = {}
        for index, plain in saved["state"].items():
            i = int(index)
            if not 0 <= i < len(params):
                raise SavingError(f"{where}: optimizer state for parameter {i}, but the model has "
                                  f"{len(params)} trainable parameters.")
            entry = dict(plain)
            for key, value in tensors.items():
                param_index, _, name = key.partition("/")
                if param_index == index:
                    if value.ndim and tuple(value.shape) != tuple(params[i].shape):
                        raise SavingError(
                            f"{where}: optimizer slot '{name}' of parameter {i} has shape "
                            f"{tuple(value.shape)}, but the parameter is {tuple(params[i].shape)}."
                        )
                    # In the parameter's own strides: torch's fused kernels pair a weight's
                    # elements with its slots' by memory, and silently mix them up otherwise.
                    entry[name] = value if not value.ndim else torch.empty_like(
                        params[i], dtype=value.dtype, device=value.device).copy_(value)
            state[i] = entry
        optimizer.torch_optimizer.load_state_dict(
            {"state": state, "param_groups": saved["param_groups"]})
    except SavingError:
        raise
    except Exception as e:
        raise SavingError(f"{where}: the optimizer state does not fit this model: {e}") from e
