"""Data-parallel training on torch.distributed: a script that calls `fit` runs unchanged under

    torchrun --nproc_per_node=4 train.py                       # 4 processes (GPUs) on one machine
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 train.py

`fit` finds the process group (one the script initialised, or torchrun's environment — RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR — from which it initialises one: NCCL when training on CUDA,
gloo otherwise; each process trains on the GPU of its local rank) and then, as Keras does under
a distribution strategy:

- `batch_size` stays the *global* batch: each global batch is split across the processes (as
  evenly as possible), each process runs torch's DistributedDataParallel forward and backward on
  its part, and the averaged gradient is that of the whole global batch — the weights follow the
  same path as one process training on the same batches. Rank 0 draws each epoch's shuffle and
  every rank takes its part of it. A DataLoader is re-batched through torch's DistributedSampler
  (seeded by rank 0, re-shuffled per epoch), its batch size divided among the processes.
- Logged losses and metrics are those of the whole epoch's data: the metric states (sums and
  counts, not the ratios) are summed across processes before they are read. Validation data is
  split across processes the same way.
- Rank 0 alone prints and writes: the progress bar, ModelCheckpoint, CSVLogger, BackupAndRestore
  backups (every rank reads a backup back when resuming), `model.save`, `save_weights` and
  `export`.
- BatchNormalization normalizes each process's part of the batch with that part's statistics;
  `BatchNormalization(synchronized=True)` uses the statistics of the whole global batch. At each
  epoch end the moving statistics are averaged across processes, so every process holds the same
  model.
- `model.stop_training` (EarlyStopping, TerminateOnNaN, ...) takes effect at the end of the epoch,
  on every process at once when any process set it.

Batch-level logs seen by callbacks during an epoch (the live progress bar) are rank 0's own.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import warnings

import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler

from lamina.data.adapters import ArrayData, LoaderData

__all__ = ["is_initialized", "rank", "world_size", "is_main_process", "rank_zero_only", "DataParallel",
           "setup", "callbacks_for_this_process"]


def is_initialized() -> bool:
    """Whether this process is one of several in an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: in the process group, else in torchrun's environment (before `fit`
    has started the group), else 0."""
    return dist.get_rank() if is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    """How many processes train together: as `rank`, else 1."""
    return dist.get_world_size() if is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True on rank 0, and in a program that is not distributed: where to print and write files."""
    return rank() == 0


def rank_zero_only(fn):
    """Decorate a function (printing, saving) to run on rank 0 only; elsewhere it returns None.

    Example:
        >>> @lamina.distributed.rank_zero_only
        ... def report(history):
        ...     print(history.history["loss"][-1])
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


def _initialise_from_environment(device: torch.device) -> None:
    """Start the process group that torchrun's environment describes, once per program."""
    env = os.environ
    if is_initialized() or not dist.is_available() or int(env.get("WORLD_SIZE", "1")) <= 1:
        return
    if dist.is_initialized() or not all(k in env for k in ("RANK", "MASTER_ADDR", "MASTER_PORT")):
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(_destroy)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def setup(model) -> DataParallel | None:
    """For `fit`: the data-parallel state of this process, or None when it trains alone."""
    _initialise_from_environment(model._device())
    return DataParallel(model) if is_initialized() else None


class DataParallel:
    """One `fit` call's data-parallel state: the DistributedDataParallel wrapper used for the
    training forward pass, and this process's share of the current global batch.

    The model itself stays the user's module; the wrapper shares its parameters and buffers.
    """

    def __init__(self, model):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = model._device()
        # Buffers (moving statistics) are averaged at epoch ends instead of being overwritten
        # with rank 0's before every forward pass (torch 2.13 renamed the option).
        options = inspect.signature(DistributedDataParallel.__init__).parameters
        no_forward_sync = "forward_sync_buffers" if "forward_sync_buffers" in options else "broadcast_buffers"
        # An output without a loss leaves the weights that only it uses without gradients, which
        # DDP must then look for after every backward pass.
        unused = any(spec.loss is None for spec in model._outputs_spec)
        self.wrapper = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=unused, **{no_forward_sync: False})
        # Each rank's loss is multiplied by this before backward, so that the gradients DDP
        # averages are those of the global batch's mean loss when the parts differ in size.
        self.share = 1.0

    # ----------------------------------------------------------------- data
    def shard(self, data, training: bool):
        """`data` (an adapter) as this process's parts of each global batch."""
        if isinstance(data, ArrayData):
            if training:
                _check_every_rank_gets_samples(data.n, data.batch_size, self.world_size)
            return _ShardedArrays(data, self)
        if isinstance(data.loader.dataset, IterableDataset):
            warnings.warn(
                "fit under torch.distributed: an IterableDataset cannot be split by lamina; each "
                "process trains on what its dataset yields, so the dataset must shard itself "
                "(torch.distributed.get_rank()).", stacklevel=3)
            return data
        if not training:
            return data  # every process evaluates the whole loader; nothing to combine
        return _ShardedLoader(data, self)

    def shared_random_integer(self) -> int:
        """A random integer drawn by rank 0 and known to every process."""
        value = torch.randint(0, 2**62, (1,), device=self.device)
        dist.broadcast(value, src=0)
        return int(value)

    def shared_permutation(self, n: int) -> torch.Tensor:
        """rank 0's `torch.randperm(n)` (the draw one process would make), on every process."""
        order = torch.randperm(n) if self.rank == 0 else torch.empty(n, dtype=torch.int64)
        on_device = order.to(self.device)
        dist.broadcast(on_device, src=0)
        return on_device.cpu()

    # ----------------------------------------------------------------- state
    def reduce_metrics(self, metrics) -> None:
        """Sum every metric's states (totals, counts, confusion counts) across processes, in
        place, so that `result()` is the metric of all processes' data together."""
        states, local = [], []
        for metric in metrics:
            names = getattr(metric, "state_names", ())
            if not names:
                local.append(metric.name)
            states += [getattr(metric, name) for name in names]
        if local:
            warnings.warn(
                f"Metrics {local} declare no `state_names`, so their values are this process's "
                "alone; list the metric's accumulator attributes in `state_names` to combine them "
                "across processes.", stacklevel=3)
        if not states:
            return
        packed = torch.cat([s.reshape(-1).to(self.device, torch.float64) for s in states])
        dist.all_reduce(packed)
        for state, values in zip(states, packed.split([s.numel() for s in states])):
            state.copy_(values.reshape(state.shape))

    def average_buffers(self, model) -> None:
        """Average the floating-point buffers (moving statistics) across processes."""
        with torch.no_grad():
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    dist.all_reduce(buffer)
                    buffer.div_(self.world_size)

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any process."""
        value = torch.tensor([int(bool(flag))], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value)


def callbacks_for_this_process(callbacks) -> list:
    """The callbacks this process runs: all on rank 0; elsewhere all but those whose only effect
    is writing files (ModelCheckpoint, CSVLogger). BackupAndRestore runs everywhere, since every
    process restores from the backup, and writes it on rank 0 only."""
    from lamina.callbacks import CSVLogger, ModelCheckpoint

    if is_main_process():
        return list(callbacks)
    return [cb for cb in callbacks if not isinstance(cb, (CSVLogger, ModelCheckpoint))]


def _check_every_rank_gets_samples(n: int, batch_size: int, processes: int) -> None:
    smallest = min(batch_size, n % batch_size or batch_size)
    if smallest < processes:
        raise ValueError(
            f"fit under torch.distributed: a global batch of {smallest} sample(s) cannot be split "
            f"across {processes} processes (each needs at least one). With {n} samples, choose a "
            f"batch_size of at least {processes} for which {n} % batch_size is 0 or at least "
            f"{processes}. Received: batch_size={batch_size}"
        )


class _ShardedArrays:
    """In-memory arrays whose every global batch is split across the processes."""

    partial = True  # each process sees part of the data: metrics are summed across processes

    def __init__(self, data: ArrayData, parallel: DataParallel):
        self.data, self.parallel = data, parallel

    def __len__(self) -> int:
        return len(self.data)

    def peek(self):
        return self.data.peek()

    def __iter__(self):
        data, parallel = self.data, self.parallel
        order = parallel.shared_permutation(data.n) if data.shuffle else None
        for start in range(0, data.n, data.batch_size):
            size = min(data.batch_size, data.n - start)
            base, extra = divmod(size, parallel.world_size)
            lo = start + parallel.rank * base + min(parallel.rank, extra)
            hi = lo + base + (parallel.rank < extra)
            if hi == lo:
                continue  # evaluation only: training batches are checked to reach every rank
            parallel.share = parallel.world_size * (hi - lo) / size
            yield data.take(slice(lo, hi) if order is None else order[lo:hi])
        parallel.share = 1.0


class _ShardedLoader:
    """A DataLoader's dataset re-batched through a DistributedSampler: each process gets
    batch_size / processes samples per step (the sampler pads the epoch by repeating a few
    samples so that every process has as many)."""

    def __init__(self, data: LoaderData, parallel: DataParallel):
        loader = data.loader
        processes = parallel.world_size
        if loader.batch_size is None or loader.batch_size % processes:
            raise ValueError(
                f"fit under torch.distributed: the DataLoader's batch_size ({loader.batch_size}) "
                f"must be a multiple of the {processes} processes: it is the global batch, split "
                "evenly among them. Pass a DataLoader with such a batch_size (and no batch_sampler)."
            )
        self.sampler = DistributedSampler(
            loader.dataset, num_replicas=processes, rank=parallel.rank,
            shuffle=isinstance(loader.sampler, RandomSampler), seed=parallel.shared_random_integer(),
            drop_last=loader.drop_last)
        self.data = LoaderData(DataLoader(
            loader.dataset, batch_size=loader.batch_size // processes, sampler=self.sampler,
            num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
            drop_last=loader.drop_last, worker_init_fn=loader.worker_init_fn))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data)

    def peek(self):
        return self.data.peek()

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        yield from self.data
