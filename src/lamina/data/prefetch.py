"""Batches on the model's device one step ahead (CUDA): pinned host memory, non-blocking copies.

While the step on batch i runs on the GPU, batch i+1 is already on its way: its tensors are
pinned (page-locked, so the copy is a DMA the host does not wait for) and copied on a side CUDA
stream; the compute stream waits for that copy only when the batch is used. On any other device
`prefetched` returns the batches unchanged: no thread, no copy.
"""

from __future__ import annotations

import torch

from lamina.utils import tree


def prefetched(batches, device: torch.device):
    """`batches` (an iterable of tensor structures) moved to `device` one batch ahead on CUDA;
    elsewhere `batches` itself."""
    if device.type != "cuda":
        return batches
    return Prefetcher(batches, CudaCopier(device))


class Prefetcher:
    """Iterates `batches`, each copied by `copier` one batch ahead of its use: when batch i is
    handed out, the copy of batch i+1 has been started. Each batch is copied once; a loop that
    stops early leaves at most one copy unused."""

    def __init__(self, batches, copier):
        self.batches, self.copier = batches, copier

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        source = iter(self.batches)
        ahead = self._start(source)
        while ahead is not None:
            current, ahead = ahead, self._start(source)
            yield self.copier.finish(current)

    def _start(self, source):
        batch = next(source, None)
        return None if batch is None else self.copier.start(batch)


class CudaCopier:
    """start: pin and copy a batch on a side stream; finish: make the current stream wait for
    that copy, and keep its memory from reuse until the current stream is done with it."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def start(self, batch):
        with torch.cuda.stream(self.stream):
            moved = tree.map_structure(self._copy, batch)
            done = torch.cuda.Event()
            done.record(self.stream)
        return moved, done

    def _copy(self, t):
        if not isinstance(t, torch.Tensor) or t.device == self.device:
            return t
        if t.device.type == "cpu" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def finish(self, started):
        moved, done = started
        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        for t in tree.flatten(moved):
            if isinstance(t, torch.Tensor) and t.is_cuda:
                t.record_stream(current)
        return moved
