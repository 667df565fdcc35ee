"""The thread count of lamina's loops (lamina/threads.py): the CPUs a process may use, the probe's
choice on a simulated clock, the override, and torch's own setting restored after every loop."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import lamina
from lamina import layers, threads


class Clock:
    """perf_counter for the probe: a step costs `cost[torch.get_num_threads()]` seconds (or what
    that function returns); with `waits=True`, `cost[(threads, throttled)]`, the throttle state
    read from a stand-in the probe switches. With `waited` (setting -> the share of each step its
    threads wait for a CPU), the process's run delay as the kernel would report it; without, the
    kernel reports none."""

    def __init__(self, monkeypatch, cost, waited=None):
        self.now, self.cost, self.waited, self.delay = 1000.0, cost, waited, 0
        monkeypatch.setattr(threads.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(threads, "_run_delays",
                            lambda: None if waited is None else ({"1": self.delay}, self.now))

    def steps(self, probe, n, waits=False):
        if waits and probe.throttle is None:  # as a loop starts: its gate, then the setting
            probe.throttle = Gate()
            probe.apply(probe.trial or probe.chosen)
        counts = []
        for _ in range(n):
            probe.begin()
            setting = torch.get_num_threads()
            if waits:
                setting = (setting, probe.throttle.threads == setting)
            counts.append(setting)
            cost = self.cost[setting]
            cost = cost() if callable(cost) else cost
            self.now += cost
            if self.waited is not None:
                self.delay += round(self.waited[setting] * cost * 1e9)
            probe.end()
        return counts


class Gate:
    """The probe's throttle, recorded instead of started."""

    threads = None

    def set(self, threads):
        self.threads = threads


def counts_only(ceiling=2):
    """A probe of thread counts alone (waits as libgomp's own)."""
    return threads._Probe(threads.settings(threads.candidates(ceiling), throttle=False))


def test_candidates_try_one_thread_first_and_the_ceiling_last():
    assert threads.candidates(1) == [1]
    assert threads.candidates(2) == [1, 2]
    assert threads.candidates(16) == [1, 8, 15, 16]


def test_settings_try_throttled_waits_before_libgomps_own(monkeypatch):
    monkeypatch.setattr(threads, "_throttle_applies", lambda: True)
    assert threads.settings([1, 2], throttle=True) == [(1, False), (2, True), (2, False)]
    assert threads.settings([1, 8, 15, 16], throttle=True)[4:] == [(8, False), (15, False), (16, False)]
    assert threads.settings([1, 2], throttle=False) == [(1, False), (2, False)]
    assert threads.settings([3], throttle=True) == [(3, True), (3, False)]  # a fixed count
    monkeypatch.setattr(threads, "_throttle_applies", lambda: False)  # the user's wait policy
    assert threads.settings([1, 2], throttle=True) == [(1, False), (2, False)]


# The share of each step the threads wait for a CPU, summed over them (measured with 2 threads:
# 0-1% idle, 32-36% with a core busy).
IDLE = {(1, False): 0.0, (2, True): 0.003, (2, False): 0.0}
BUSY = {(1, False): 0.0, (2, True): 0.34, (2, False): 0.9}


@pytest.mark.parametrize("case, cost, waited, chosen, spinning_steps", [
    # idle cores: a throttled wait ends in a sleep, and every parallel op pays a wake-up
    ("idle", {(1, False): 0.010, (2, True): 0.007, (2, False): 0.006}, IDLE, (2, False), 1 + threads.SAMPLES),
    # ops so small that the wake-ups make two throttled threads lose to one (the bench MLP on an
    # idle Xeon: 2.3 ms a step at one thread, 2.8 throttled, 1.7 spinning)
    ("idle, small ops", {(1, False): 0.010, (2, True): 0.011, (2, False): 0.007}, IDLE, (2, False),
     1 + threads.SAMPLES),
    # a busy core: the throttled threads wait for it, so spinning ones are not tried at all
    ("busy", {(1, False): 0.010, (2, True): 0.008, (2, False): 0.400}, BUSY, (2, True), 0),
    ("busier", {(1, False): 0.010, (2, True): 0.030, (2, False): 0.400}, BUSY, (1, False), 0),
    # where the kernel reports no run delay: spinning is tried where throttled waits won, and a
    # collapse costs one step of the probe
    ("busy, no delays", {(1, False): 0.010, (2, True): 0.008, (2, False): 0.400}, None, (2, True), 1),
    ("busier, no delays", {(1, False): 0.010, (2, True): 0.030, (2, False): 0.400}, None, (1, False), 0),
])
def test_the_probe_chooses_the_wait_mode_with_the_count(case, cost, waited, chosen, spinning_steps,
                                                         monkeypatch):
    monkeypatch.setattr(threads, "_throttle_applies", lambda: True)
    clock = Clock(monkeypatch, cost, waited)
    torch.set_num_threads(2)
    probe = threads._Probe(threads.settings([1, 2], throttle=True))
    seen = clock.steps(probe, 40, waits=True)
    assert seen[:threads.WARMUP_STEPS] == [(2, True)] * threads.WARMUP_STEPS  # safe until probed
    assert probe.chosen == chosen and seen[-5:] == [chosen] * 5
    probing = seen[threads.WARMUP_STEPS:threads.WARMUP_STEPS + 3 * (1 + threads.SAMPLES)]
    assert probing.count((2, False)) == spinning_steps


def test_the_run_delay_is_read_from_the_kernel():
    """The probe's measure of a busy core: this process's threads' run delays, which a thread
    kept off its CPU by another runnable thread on the same core makes grow."""
    reading = threads._run_delays()
    if reading is None:
        pytest.skip("this kernel reports no per-thread run delay")
    delays, _ = reading
    assert str(threading.get_native_id()) in delays and all(d >= 0 for d in delays.values())
    waited = threads._waited_since(reading)
    assert waited is not None and waited >= 0
    assert threads._waited_since(None) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or threads._run_delays() is None,
                    reason="needs CPU affinity and the kernel's per-thread run delay")
def test_the_run_delay_sees_a_core_shared_with_other_processes():
    """The measure the probe rests on, against the kernel's own clocks: a thread that always
    wants to run, pinned to a CPU with two spinning processes, gets about a third of it, and the
    rest of the time it waits: its run delay is the time it was not on the CPU (wall time less
    its own CPU time, `time.thread_time`), about two thirds, whatever else shares the CPU."""
    cpus = os.sched_getaffinity(0)
    cpu = min(cpus)
    rival = ("import os, time\n"
             f"os.sched_setaffinity(0, {{{cpu}}})\n"
             "end = time.time() + 5\nwhile time.time() < end: pass")
    os.sched_setaffinity(0, {cpu})  # this thread only (Linux: 0 is the calling thread)
    rivals = [subprocess.Popen([sys.executable, "-c", rival]) for _ in range(2)]
    try:
        time.sleep(0.3)  # the rivals start spinning
        window, cpu_start, start = threads._run_delays(), time.thread_time(), time.perf_counter()
        while time.perf_counter() - start < 0.6:
            pass
        waited = threads._waited_since(window)
        off_cpu = 1 - (time.thread_time() - cpu_start) / (time.perf_counter() - start)
    finally:
        for process in rivals:
            process.kill()
            process.wait()
        os.sched_setaffinity(0, cpus)
    assert waited > 0.5 and abs(waited - off_cpu) < 0.1, (waited, off_cpu)


@pytest.mark.parametrize("each, chosen", [(0.01, (16, False)), (0.16, (16, True))])
def test_the_run_delay_is_judged_per_thread(each, chosen, monkeypatch):
    """16 threads on idle cores wait a little each (1%: 16% summed), and spinning is tried; 16%
    each is a busy machine, and it is not."""
    monkeypatch.setattr(threads, "_throttle_applies", lambda: True)
    clock = Clock(monkeypatch, {(16, True): 0.010, (16, False): 0.008},
                  waited={(16, True): 16 * each, (16, False): 16 * each})
    user = torch.get_num_threads()
    try:
        probe = threads._Probe(threads.settings([16], throttle=True))  # a count fixed by the user
        seen = clock.steps(probe, 30, waits=True)
        assert probe.chosen == chosen and seen[-1] == chosen
    finally:
        torch.set_num_threads(user)


def test_a_count_that_collapses_costs_one_step_and_the_fastest_is_kept(monkeypatch):
    clock = Clock(monkeypatch, {1: 0.010, 2: 0.400})  # 2 threads spin-waiting for a busy core
    torch.set_num_threads(2)
    counts = clock.steps(counts_only(), 20)
    # warm-up, then 1 thread (one untimed, SAMPLES timed), then 2 threads for one step only
    warm = threads.WARMUP_STEPS
    assert counts[:warm + 1 + threads.SAMPLES] == [2] * warm + [1] * (1 + threads.SAMPLES)
    assert counts[warm + 1 + threads.SAMPLES:].count(2) == 1
    assert torch.get_num_threads() == 1 and counts[-1] == 1


def test_the_faster_count_wins_and_a_later_probe_follows_the_load(monkeypatch):
    clock = Clock(monkeypatch, {1: 0.010, 2: 0.400})  # another process keeps a core busy
    torch.set_num_threads(2)
    probe = counts_only()
    counts = clock.steps(probe, 20)
    assert counts[-10:] == [1] * 10
    clock.cost = {1: 0.010, 2: 0.006}  # it ends: one thread runs as before, two would be faster
    clock.steps(probe, 5)
    assert torch.get_num_threads() == 1  # no probe before REPROBE_SECONDS
    clock.now += threads.REPROBE_SECONDS
    counts = clock.steps(probe, 20)
    assert counts[-10:] == [2] * 10


def test_throughput_decides_when_a_shared_core_makes_steps_fast_and_slow_by_turns(monkeypatch):
    """With a core shared, two threads' steps are fast while the other process waits and slow
    while it runs: their median (2 ms) beats one thread's 7 ms, their mean (about 11 ms) does not."""
    turns = iter([0.002, 0.020] * 100)
    clock = Clock(monkeypatch, {1: 0.007, 2: lambda: next(turns)})
    torch.set_num_threads(2)
    counts = clock.steps(counts_only(), 30)
    assert counts[-10:] == [1] * 10


def test_steps_that_slow_down_bring_the_next_probe_forward(monkeypatch):
    """The load changes between probes: once the chosen count's recent steps run DRIFT times
    slower than probed, the probe runs again at once, not after REPROBE_SECONDS."""
    clock = Clock(monkeypatch, {1: 0.010, 2: 0.006})
    torch.set_num_threads(2)
    probe = counts_only()
    assert clock.steps(probe, 20)[-5:] == [2] * 5
    clock.cost = {1: 0.010, 2: 0.400}  # another process takes a core
    counts = clock.steps(probe, 4 * threads.SAMPLES + 10)
    assert clock.now - 1000.0 < threads.REPROBE_SECONDS
    assert counts[-5:] == [1] * 5
    clock.cost = {1: 0.010, 2: 0.011}  # small changes leave the choice alone
    assert clock.steps(probe, 50)[-5:] == [1] * 5
    clock.cost = {1: 0.030, 2: 0.400}  # slower still: at one thread no fewer can help, so no
    assert 2 not in clock.steps(probe, 50)  # step at two threads until the periodic probe


def test_cgroup_quotas_v1_and_v2(tmp_path):
    (tmp_path / "v2" / "job").mkdir(parents=True)
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "v2" / "job" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "proc2").write_text("0::/job\n")
    assert threads._cgroup_quota(tmp_path / "proc2", tmp_path / "v2") == 1.5
    (tmp_path / "v1" / "cpu,cpuacct").mkdir(parents=True)
    (tmp_path / "v1" / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "v1" / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "proc1").write_text("4:memory:/x\n3:cpu,cpuacct:/\n")
    assert threads._cgroup_quota(tmp_path / "proc1", tmp_path / "v1") == 3.0
    (tmp_path / "v1" / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    threads._cgroup_quota.cache_clear()
    assert threads._cgroup_quota(tmp_path / "proc1", tmp_path / "v1") is None


def test_available_cpus_is_at_most_the_affinity_mask():
    import os

    assert 1 <= threads.available_cpus() <= len(os.sched_getaffinity(0))


class Seen(lamina.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.counts = []

    def on_train_batch_end(self, batch, logs=None):
        self.counts.append(torch.get_num_threads())

    on_test_batch_end = on_predict_batch_end = on_train_batch_end


def model_and_data():
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, 64)


@pytest.fixture
def automatic(monkeypatch):
    monkeypatch.delenv("LAMINA_NUM_THREADS", raising=False)
    yield
    threads.set_num_threads(None)


def test_the_override_runs_every_loop_at_its_count_and_torchs_setting_comes_back(automatic, monkeypatch):
    model, x, y = model_and_data()
    torch.set_num_threads(2)
    lamina.config.set_num_threads(3)
    seen = Seen()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[seen])
    model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[seen])
    model.predict(x, batch_size=8, verbose=0, callbacks=[seen])
    assert seen.counts == [3] * 32 and torch.get_num_threads() == 2
    threads.set_num_threads(None)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "1")
    seen.counts.clear()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[seen])
    assert seen.counts == [1] * 8 and torch.get_num_threads() == 2


def test_automatic_counts_stay_within_the_users_setting_and_it_is_restored_after_an_error(automatic):
    model, x, y = model_and_data()
    torch.set_num_threads(2)
    seen = Seen()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[seen], validation_split=0.25)
    assert set(seen.counts) <= {1, 2} and torch.get_num_threads() == 2

    class Fails(lamina.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Fails()])
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_counts_are_refused(bad, automatic, monkeypatch):
    with pytest.raises(ValueError, match="set_num_threads"):
        threads.set_num_threads(bad)
    monkeypatch.setenv("LAMINA_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="LAMINA_NUM_THREADS"):
        threads.get_num_threads()


def test_single_sample_predict_calls_probe_across_calls(automatic, monkeypatch):
    clock = Clock(monkeypatch, {1: 0.010, 2: 0.400})
    model, x, _ = model_and_data()
    torch.set_num_threads(2)
    counts, real = [], model.predict_step

    def step(data):
        counts.append(torch.get_num_threads())
        clock.now += clock.cost[counts[-1]]
        return real(data)

    model.predict_step = step
    for _ in range(threads.WARMUP_STEPS + 13):
        model.predict(x[:1], verbose=0)
    assert counts[-4:] == [1] * 4 and torch.get_num_threads() == 2


def test_one_sample_and_batch_predicts_keep_their_own_probes(automatic):
    """Alternating single-sample and batch predicts: each keeps its probe (the single steps'
    settings have no throttled waits), so neither restarts the other's warm-up and probe."""
    model, x, _ = model_and_data()
    torch.set_num_threads(2)
    model.predict(x[:1], verbose=0)
    model.predict(x, batch_size=8, verbose=0)
    probes = dict(threads._probes[model])
    model.predict(x[:1], verbose=0)
    model.predict(x, batch_size=8, verbose=0)
    assert len(probes) == 2 and all(threads._probes[model][k] is p for k, p in probes.items())


def holders():
    import threading

    return [t for t in threading.enumerate() if t.name == "lamina-omp-throttle"]


@pytest.mark.skipif(threads._libgomp() is None, reason="torch does not run on libgomp here")
def test_waits_are_throttled_while_set_and_not_against_the_users_wait_policy(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    gate = threads._Throttle()
    gate.set(2)
    assert len(holders()) == 1
    gate.set(2)  # unchanged: the same holder
    assert len(holders()) == 1
    gate.set(None)
    assert holders() == []
    gate.set(1)  # one thread waits for nobody
    assert holders() == []
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    gate.set(2)
    assert holders() == []
    gate.close()


@pytest.mark.skipif(threads._libgomp() is None or threads.available_cpus() < 2,
                    reason="torch does not run on libgomp here, or one CPU (nothing to probe)")
def test_a_loop_throttles_only_while_its_setting_says_and_stops_with_it(automatic, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    model, x, y = model_and_data()
    torch.set_num_threads(2)
    seen = []

    class Holders(lamina.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            probe = threads._probes[model]["fit"]
            setting = probe.trial or probe.chosen
            seen.append((setting, len(holders())))

    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[Holders()])
    assert {s for s, _ in seen} <= set(threads.settings([1, 2], throttle=True))
    assert all(count == int(throttled) for (_, throttled), count in seen)
    assert holders() == [] and torch.get_num_threads() == 2
