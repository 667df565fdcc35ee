"""How many threads torch computes with inside lamina's loops (`fit`, `evaluate`, `predict`).

torch's CPU ops run on an OpenMP thread pool (libgomp in torch's Linux wheels), and so do
lamina's compiled kernels, which share that pool. Its threads wait for each other at the end of
every parallel op by spinning on their core for a few milliseconds before sleeping (libgomp's
default when `OMP_WAIT_POLICY` is unset). When another process keeps one of those cores busy,
the thread scheduled there runs only in turns, and its partners spin through every op waiting
for it: measured on a 2-core machine with a competing process, the bench MLP's `fit` ran at
about 560 samples/s with 2 threads against 5,500 with 1. The wait policy is read once, when
torch loads libgomp, so lamina cannot change it after `import torch`. Two things it can do:

- libgomp spins only ~100 times before sleeping whenever it manages more threads than the process
  has CPUs (documented with GOMP_SPINCOUNT). While a loop runs with throttled waits, a thread of
  lamina's holds an idle pool just large enough for that, and exits with it when the loop ends or
  the waits go back to libgomp's own (`_Throttle`): the MLP above then ran at 1,450-10,400
  samples/s at 2 threads, against 110-180 without (a machine loaded ~10 on 2 cores, so the
  spread is wide). On idle cores throttled waits cost instead: each ends in a sleep, and every
  parallel op then pays a wake-up (the bench FCN at 2 threads on an idle 2-core Xeon: 601 and 415
  samples/s throttled, 697 and 636 not, two runs each). Not where the user set OMP_WAIT_POLICY
  or GOMP_SPINCOUNT.
- it picks the setting itself (thread count, and throttled waits or libgomp's own), and puts the
  user's count back afterwards:

  - at most the CPUs this process may use: its CPU affinity, and the cgroup CPU quota of a
    container (a `--cpus=2` container on a 64-core host gets 2), and at most
    `torch.get_num_threads()` as the loop starts (the user's setting, or torch's default);
  - on the CPU, the loop's own steps decide: after a few warm-up steps (at the ceiling, waits
    throttled) it times a few steps at each candidate count (one, half the ceiling, one less,
    the ceiling) with throttled waits, then with libgomp's own waits at each count of two threads
    or more whose threads found their cores free while it ran with throttled waits (Linux's
    per-thread run delay: the time a thread was ready but waited for a CPU; a core busy with
    another process makes spinning waits collapse, and then they are not tried at all; where the
    delay cannot be read, only at counts whose throttled waits were the best so far), and runs
    on at the setting of the shortest mean step (the
    mean, not the median: with a core shared, a count's steps are fast while the other process
    waits and slow while it runs, and throughput is their mean). It probes again every
    `REPROBE_SECONDS`, since the machine's load changes, and at once (the chosen setting and the
    ones tried before it only) when the chosen setting's recent steps run `DRIFT` times slower
    than the probe measured. A setting whose step is `SLOWER` times the best's mean is dropped
    after that one step, so a probe costs a few steps; a step at a setting that collapses is
    what it saves. Each model keeps its probe for each kind of loop from call to call, so
    single-sample `predict` calls probe across calls (counts only: a holder thread started and
    stopped for one step would cost more than it saves).

`set_num_threads(n)` (or the environment variable `LAMINA_NUM_THREADS=n`) fixes the count lamina's
loops run at instead (only the wait mode is then probed); `set_num_threads(None)` (or
`LAMINA_NUM_THREADS=auto`) restores the automatic choice. Code outside lamina's loops, and torch's
setting itself, are never changed. A user can also start Python with `OMP_WAIT_POLICY=PASSIVE`
(threads sleep at once instead of spinning, everywhere: 8,700 samples/s on the MLP above at 2
threads); lamina does not set it, since it is process-wide and must be set before torch is
imported.

lamina's compiled kernels (`#pragma omp parallel num_threads(torch.get_num_threads())`, linked
to the libgomp torch has loaded) run on the same pool, so they follow both.

Example:
    >>> lamina.config.set_num_threads(4)      # lamina's loops always run 4 threads
    >>> lamina.config.set_num_threads(None)   # back to the automatic choice
"""

from __future__ import annotations

import collections
import ctypes
import functools
import math
import os
import statistics
import sys
import threading
import time
import weakref
from pathlib import Path

import torch

__all__ = ["set_num_threads", "get_num_threads", "available_cpus", "loop_threads"]

REPROBE_SECONDS = 30.0
WARMUP_STEPS = 3  # untimed steps before the first probe: the bench MLP's first steps at one
# thread ran 3.8, 3.3, 2.9, 2.8, 2.7 ms, so that a probe started after one favoured two threads
SAMPLES = 5  # timed steps per candidate count
SLOWER = 3.0  # a step this many times slower than the best count's mean ends its count's trial
DRIFT = 1.5  # the chosen count's recent steps this many times slower than probed: probe again now
CONTENDED = 0.025  # a trial's threads that waited for a CPU this share of its time each, on
# average, share their cores with another process: the bench MLP's two throttled threads waited
# 0-0.5% of the time each on an idle 2-core Xeon and 16-18% with a process keeping one core busy,
# where its steps with spinning waits took 70-120 ms against 2.5 ms

_fixed: int | None = None


def set_num_threads(n: int | None) -> None:
    """Run lamina's loops at `n` threads (an int >= 1), or choose automatically (None).

    Args:
        n: the number of threads, or None for the automatic choice (the default): the CPUs this
            process may use, lowered where the loop's first steps run faster on fewer.

    Raises:
        ValueError: `n` is not a positive int or None.
    """
    global _fixed
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads: `n` must be a positive int or None. Received: n={n!r}")
    _fixed = n


def get_num_threads() -> int | None:
    """The count set by `set_num_threads` or `LAMINA_NUM_THREADS`; None: chosen automatically."""
    if _fixed is not None:
        return _fixed
    value = os.environ.get("LAMINA_NUM_THREADS", "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"LAMINA_NUM_THREADS must be a positive integer or 'auto'. Received: {value!r}")
    return int(value)


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


@functools.cache  # read once: a container's quota is fixed while it runs
def _cgroup_quota(proc=Path("/proc/self/cgroup"), root=Path("/sys/fs/cgroup")) -> float | None:
    """The smallest CPU quota (in CPUs) of this process's cgroup and its parents, or None."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "max 100000" or "200000 100000" in cpu.max
            files = [(d / "cpu.max", None) for d in _dirs(root, path)]
        elif "cpu" in controllers.split(","):  # v1: cfs quota and period, -1 for none
            files = [(d / "cpu.cfs_quota_us", d / "cpu.cfs_period_us")
                     for d in _dirs(root / controllers, path)]
        else:
            continue
        for first, period in files:
            try:
                fields = first.read_text().split()
                if period is not None:
                    fields.append(period.read_text().strip())
            except OSError:
                continue
            if fields[0] not in ("max", "-1") and float(fields[1]) > 0:
                quotas.append(float(fields[0]) / float(fields[1]))
    return min(quotas) if quotas else None


def _dirs(root: Path, path: str) -> list:
    """`root`/`path` and its parents up to `root` (a container often sees only `root` itself)."""
    here = root / path.lstrip("/")
    return [here, *[p for p in here.parents if p.is_relative_to(root)]]


def candidates(ceiling: int) -> list[int]:
    """The counts a probe tries, in this order: one (never collapses), half the cores, all but
    one (the rest left to a competing process), all."""
    return sorted({c for c in (ceiling, ceiling - 1, ceiling // 2, 1) if c >= 1})


def settings(counts, throttle: bool) -> list[tuple[int, bool]]:
    """The (threads, throttled waits) a probe tries, in this order: `counts` (see `candidates`)
    with waits throttled first (safe on a busy core), then each count of two threads or more with
    libgomp's own waits (faster on idle cores: a throttled wait ends in a sleep, and each parallel
    op then pays a wake-up). Without `throttle` (or where it cannot apply), the counts alone."""
    throttled = throttle and _throttle_applies()
    first = [(c, throttled and c > 1) for c in counts]
    return first + [(c, False) for c in counts if throttled and c > 1]


class _Probe:
    """Chooses the setting (threads, throttled waits) from the loop's steps, each timed between
    `begin()` and `end()`."""

    def __init__(self, settings: list[tuple[int, bool]]):
        self.settings = settings
        self.chosen = max(settings)  # until the first probe: all threads, throttled if that can be
        self.queue = []  # the settings this probe has still to try
        self.times = {}  # setting -> the times of its steps in this probe
        self.trial = None  # the setting on trial, None between probes
        self.warming = False  # the step after a switch: the pool resizes, caches refill
        self.started = self.next_probe = None
        self.expected = None  # the chosen setting's mean step in the last probe
        self.recent = collections.deque(maxlen=2 * SAMPLES)  # its steps since
        self.slowed = False  # the next probe comes of a slowdown (`_watch`)
        self.warmups = 0  # the loop's first steps, before the first probe
        self.throttle = None  # the running loop's _Throttle (None: waits as libgomp's own)
        self.waited = {}  # throttled setting -> its threads' share of the trial waiting for a CPU
        self.window = None  # a throttled trial's start: its threads' run delays, and the time

    def apply(self, setting) -> None:
        count, throttled = setting
        torch.set_num_threads(count)
        if self.throttle is not None:
            self.throttle.set(count if throttled else None)

    def begin(self) -> None:
        now = time.perf_counter()
        if self.next_probe is None:  # the loop's first steps warm up (caches, allocator, lazy
            self.warmups += 1  # initialization): timed by nobody
            if self.warmups == WARMUP_STEPS:
                self.next_probe = now
        elif self.trial is None and now >= self.next_probe:
            # After a slowdown only fewer threads (or throttled waits) can help: the others wait
            # for the periodic probe (a step at a setting that collapses is what a probe costs).
            last = self.settings.index(self.chosen) if self.slowed else len(self.settings) - 1
            self.queue = self.settings[:last + 1]
            self.times, self.waited, self.slowed = {}, {}, False
            self._try_next()
        self.started = time.perf_counter()

    def end(self) -> None:
        elapsed = time.perf_counter() - self.started
        if self.trial is None:
            self._watch(elapsed)
            return
        done = self._means()
        if done and elapsed > SLOWER * min(done.values()):
            del self.times[self.trial]  # a setting that collapses costs one step, not SAMPLES
            self._try_next()
        elif self.warming:
            self.warming = False
        else:
            self.times[self.trial].append(elapsed)
            if len(self.times[self.trial]) == SAMPLES:
                self._try_next()

    def _means(self) -> dict:
        return {s: statistics.fmean(t) for s, t in self.times.items() if len(t) == SAMPLES}

    def _try_next(self) -> None:
        if self.trial is not None and self.trial[1]:  # a throttled trial: did its threads wait?
            self.waited[self.trial] = _waited_since(self.window)
        while self.queue:
            count, throttled = setting = self.queue.pop(0)
            if not throttled and self._cores_taken(count):
                continue
            self.trial, self.warming = setting, True
            self.times[setting] = []
            self.apply(setting)
            if throttled:  # read after the switch: the holder's pool is up
                self.window = _run_delays()
            return
        means = self._means()
        self.chosen = min(means, key=means.get)
        self.expected = means[self.chosen]
        self.recent.clear()
        self.apply(self.chosen)
        self.trial, self.next_probe = None, time.perf_counter() + REPROBE_SECONDS

    def _cores_taken(self, count) -> bool:
        """Whether libgomp's own (spinning) waits at `count` threads would collapse, so are not
        tried: its threads waited for a CPU while the count ran with throttled waits (another
        process has some of the cores), or those waits collapsed themselves; where the run
        delay cannot be read, the throttled waits lost to some setting tried before."""
        if (count, True) not in self.settings:
            return False  # no throttled waits to learn from (they cannot apply here)
        means = self._means()
        if (count, True) not in means:
            return True  # its throttled trial was dropped as SLOWER than the best
        waited = self.waited.get((count, True))
        if waited is not None:
            return waited > CONTENDED * count
        return means[(count, True)] > min(means.values())

    def _watch(self, elapsed) -> None:
        """Between probes: probe the chosen setting and the ones before it at the next step once
        the chosen setting's recent steps are `DRIFT` times slower on average than the probe
        measured (the load grew); at the first setting (one thread), nothing safer is left."""
        if self.expected is None:
            return
        self.recent.append(elapsed)
        if (self.chosen != self.settings[0] and len(self.recent) == self.recent.maxlen
                and sum(self.recent) > DRIFT * self.expected * len(self.recent)):
            self.next_probe, self.slowed = time.perf_counter(), True


def _run_delays() -> tuple[dict, float] | None:
    """Each thread of this process's time spent ready to run but waiting for a CPU (ns, from
    /proc/self/task/*/schedstat), with the time read; None where the kernel does not say."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    delays = {}
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat", "rb") as file:
                delays[task] = int(file.read().split()[1])
        except (OSError, IndexError, ValueError):  # the thread ended, or no schedstat
            continue
    return (delays, time.perf_counter()) if delays else None


def _waited_since(window) -> float | None:
    """The CPU-seconds this process's threads (those alive at both ends) waited for a CPU since
    `window` (a `_run_delays()` reading), per second; None where either reading is missing."""
    if window is None:
        return None
    now = _run_delays()
    if now is None:
        return None
    (before, start), (after, end) = window, now
    waited = sum(after[t] - before[t] for t in after.keys() & before.keys())
    return waited / 1e9 / max(end - start, 1e-9)


# A model's probes, one per kind of loop (their steps differ), kept from call to call: predict
# called on one sample at a time probes across its calls.
_probes = weakref.WeakKeyDictionary()


_local = threading.local()  # whether a loop runs in this thread, and its probe


@functools.cache
def _libgomp():
    """torch's libgomp with GOMP_parallel typed, where torch runs on it (it is then loaded already:
    RTLD_NOLOAD finds it, and never loads a second OpenMP runtime); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        gomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
    except OSError:
        return None
    gomp.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    gomp.GOMP_parallel.restype = None
    return gomp


_NOTHING = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda data: None)


def _throttle_applies() -> bool:
    """Whether lamina can throttle libgomp's waits here: torch runs on libgomp, and the user chose
    no wait policy or spin count (then theirs holds)."""
    return (_libgomp() is not None and "OMP_WAIT_POLICY" not in os.environ
            and "GOMP_SPINCOUNT" not in os.environ)


class _Throttle:
    """Throttled waits for a loop's steps: libgomp's threads then spin about 100 times before they
    sleep, instead of ~300,000 (milliseconds). libgomp does that, as documented for GOMP_SPINCOUNT,
    whenever it manages more threads than the process has CPUs, so while on (`set(threads)`) a
    thread here keeps an idle pool of `available - threads + 2` (at least one more thread than
    that); `set(None)` and `close()` end it, and the pool goes with it."""

    def __init__(self):
        self.threads, self._release, self._holder = None, None, None

    def set(self, threads: int | None) -> None:
        if threads == self.threads:
            return
        self.close()
        if threads is None or threads < 2 or not _throttle_applies():
            return
        gomp, ready, release = _libgomp(), threading.Event(), threading.Event()

        def hold():
            gomp.GOMP_parallel(ctypes.cast(_NOTHING, ctypes.c_void_p), None,
                               max(2, available_cpus() - threads + 2), 0)
            ready.set()
            release.wait()

        holder = threading.Thread(target=hold, name="lamina-omp-throttle", daemon=True)
        holder.start()
        ready.wait()
        self.threads, self._release, self._holder = threads, release, holder

    def close(self) -> None:
        if self._holder is not None:
            self._release.set()
            self._holder.join()
        self.threads, self._release, self._holder = None, None, None


class loop_threads:
    """`with loop_threads(model, kind, device):` runs one of `model`'s loops (`kind`: fit,
    evaluate, predict) at the chosen setting (thread count, and whether waits are throttled), and
    restores torch's count after it; its steps, wrapped in `timed_step()`, choose the setting (on
    the CPU). A loop inside a loop (fit's validation) runs at the outer loop's setting, and its
    steps are not timed. `throttle` (for loops of more than a step or two): throttled waits are
    among the settings tried (a holder thread starts and stops with them, which a single step
    would not repay). A class rather than a generator: a single-sample predict enters one."""

    __slots__ = ("model", "kind", "device", "throttle", "user", "probe", "gate", "outer")

    def __init__(self, model, kind: str, device: torch.device, throttle: bool = True):
        self.model, self.kind, self.device, self.throttle = model, kind, device, throttle

    def __enter__(self):
        if getattr(_local, "active", False):
            self.outer, _local.probe = _local.probe, None
            self.user = None  # nested: nothing of its own to restore but the outer probe
            return
        self.user = user = torch.get_num_threads()
        fixed = get_num_threads()
        counts = [fixed] if fixed else candidates(min(user, available_cpus()))
        tried = settings(counts, self.throttle) if self.device.type == "cpu" else [(counts[-1], False)]
        probe = self.gate = None
        if len(tried) > 1:
            # One probe per kind of loop, and apart for single steps (no throttled waits among
            # their settings): a user alternating one-sample and batch predicts keeps both.
            kinds = _probes.get(self.model)
            if kinds is None:  # (setdefault would make a weak reference on every call)
                kinds = _probes[self.model] = {}
            key = self.kind if self.throttle else f"{self.kind}, one step"
            if key not in kinds or kinds[key].settings != tried:
                kinds[key] = _Probe(tried)
            probe = kinds[key]
        if probe is None:  # one setting, never a throttled one (`settings` pairs those with spinning)
            torch.set_num_threads(tried[0][0])
        else:
            if any(throttled for _, throttled in tried):
                probe.throttle = self.gate = _Throttle()
            probe.apply(probe.trial or probe.chosen)
        self.probe = probe
        _local.active, _local.probe = True, probe

    def __exit__(self, *exc):
        if self.user is None:
            _local.probe = self.outer
            return
        _local.active, _local.probe = False, None
        if self.gate is not None:
            self.probe.throttle = None
            self.gate.close()
        torch.set_num_threads(self.user)


class timed_step:
    """`with timed_step():` around one step of a loop run under `loop_threads`."""

    __slots__ = ("probe",)

    def __enter__(self):
        self.probe = getattr(_local, "probe", None)
        if self.probe is not None:
            self.probe.begin()

    def __exit__(self, kind, *_):
        if self.probe is not None and kind is None:
            self.probe.end()
