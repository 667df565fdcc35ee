"""What lamina's operators share: the test for the compiled loops' inputs, a vmap rule by
looping, and each operator's plain-torch formula for graph export."""

from __future__ import annotations

import torch

# Operator -> its formula in torch's own ops, for `torch.export`'s run_decompositions: an exported
# graph (ONNX) then holds standard operators only.
DECOMPOSITIONS: dict = {}


def on_loops(*tensors) -> bool:
    """Whether tensors (None: absent, skipped) can go to a compiled loop: float32, contiguous, CPU."""
    return all(t is None or (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous())
               for t in tensors)


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are upcast: their range and precision are too small for statistics
    and sums."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def vmap_by_loop(op) -> None:
    """Register for `op` the vmap rule that runs it once per mapped index and stacks the results:
    right for every operator (each sees plain tensors, so its own route choice applies), and the
    one used where no batched formula is written."""

    def rule(info, in_dims, *args):
        results = [op(*(a.select(d, i) if isinstance(a, torch.Tensor) and d is not None else a
                       for a, d in zip(args, in_dims)))
                   for i in range(info.batch_size)]
        if isinstance(results[0], (tuple, list)):
            stacked = [torch.stack(r) for r in zip(*results)]
            return type(results[0])(stacked), type(results[0])(0 for _ in stacked)
        return torch.stack(results), 0

    torch.library.register_vmap(op, rule)


def decomposes(op):
    """Decorator: record the function as `op`'s plain-torch formula (see DECOMPOSITIONS)."""

    def record(formula):
        DECOMPOSITIONS[op] = formula
        return formula

    return record
