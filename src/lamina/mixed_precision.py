"""Mixed precision with Keras' names, run by torch's autocast and GradScaler.

Under "mixed_bfloat16" or "mixed_float16" the weights stay float32 (the variable dtype) while the
forward pass and the loss run under `torch.autocast` in the half type (the compute dtype): matrix
products and convolutions in half precision, reductions, softmax and losses in float32 (torch's
autocast lists; lamina's losses score half outputs in float32 too). Normalization statistics are
always computed in float32, and moving statistics kept in float32. "mixed_float16" also scales
the loss (torch's GradScaler, with Keras' LossScaleOptimizer settings: initial scale 2**15,
doubled after 2000 finite steps, halved and the step skipped on an overflow); bfloat16 has
float32's range and needs none.

A model takes the global policy in force when it is created, as a Keras layer does:

    >>> from lamina import mixed_precision
    >>> mixed_precision.set_global_policy("mixed_bfloat16")
    >>> model = lamina.Sequential([...])          # computes in bfloat16, keeps float32 weights
    >>> mixed_precision.set_global_policy("float32")
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["DTypePolicy", "set_global_policy", "global_policy"]

# Keras' LossScaleOptimizer defaults (torch's GradScaler starts at 2**16).
INITIAL_LOSS_SCALE = 2.0**15
GROWTH_INTERVAL = 2000

_COMPUTE = {"float32": torch.float32, "mixed_float16": torch.float16, "mixed_bfloat16": torch.bfloat16}


class DTypePolicy:
    """A dtype policy: the dtype layers compute in and the dtype their weights are kept in.

    Args:
        name: "float32" (the default), "mixed_bfloat16" (compute bfloat16, weights float32) or
            "mixed_float16" (compute float16, weights float32, with loss scaling in `fit`).

    Example:
        >>> policy = DTypePolicy("mixed_bfloat16")
        >>> policy.compute_dtype, policy.variable_dtype
        ('bfloat16', 'float32')
    """

    def __init__(self, name="float32"):
        if isinstance(name, DTypePolicy):
            name = name.name
        if name not in _COMPUTE:
            hint = (" lamina's global policies are mixed ones; for weights in another dtype pass "
                    "`dtype=` to each layer.") if name in ("float16", "bfloat16", "float64") else ""
            raise ValueError(
                f"Unknown dtype policy {name!r}: use one of {sorted(_COMPUTE)}.{hint} "
                f"Received: name={name!r}"
            )
        self.name = name

    @property
    def compute_dtype(self) -> str:
        return str(_COMPUTE[self.name]).removeprefix("torch.")

    @property
    def variable_dtype(self) -> str:
        return "float32"

    @property
    def is_mixed(self) -> bool:
        return self.name != "float32"

    def autocast(self, device_type: str):
        """The context in which a forward pass and its loss run under this policy."""
        if not self.is_mixed:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=_COMPUTE[self.name])

    def grad_scaler(self, device_type: str) -> torch.amp.GradScaler | None:
        """A loss scaler for training under this policy (float16 only), else None."""
        if self.name != "mixed_float16":
            return None
        return torch.amp.GradScaler(device_type, init_scale=INITIAL_LOSS_SCALE,
                                    growth_interval=GROWTH_INTERVAL)

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'


_global = DTypePolicy("float32")


def set_global_policy(policy) -> None:
    """Set the policy of the models created from now on.

    Args:
        policy: a DTypePolicy or its name: "float32", "mixed_bfloat16" or "mixed_float16".
    """
    global _global
    _global = DTypePolicy(policy)


def global_policy() -> DTypePolicy:
    """The policy new models take (float32 unless `set_global_policy` changed it)."""
    return _global
