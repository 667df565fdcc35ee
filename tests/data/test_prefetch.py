"""The prefetcher's order of copies (one batch ahead), on a fake device that logs what it is asked.

CUDA's copier itself needs a GPU (bench/gpu_check.py trains through it); here the logic around it:
each batch copied once, the next copy started before the current batch is handed out, the last
batch handed out, and nothing at all on the CPU.
"""

import numpy as np
import torch

import lamina
from lamina import layers
from lamina.data.prefetch import Prefetcher, prefetched


class FakeCopier:
    def __init__(self, log):
        self.log = log

    def start(self, batch):
        self.log.append(("start", batch))
        return ("copied", batch)

    def finish(self, started):
        tag, batch = started
        assert tag == "copied"
        self.log.append(("finish", batch))
        return batch


def test_each_batch_is_copied_once_one_batch_ahead():
    log = []
    handed_out = []
    for batch in Prefetcher([0, 1, 2], FakeCopier(log)):
        handed_out.append(batch)
        log.append(("step", batch))
    assert handed_out == [0, 1, 2]
    assert log == [("start", 0), ("start", 1), ("finish", 0), ("step", 0),
                   ("start", 2), ("finish", 1), ("step", 1),
                   ("finish", 2), ("step", 2)]


def test_a_loop_that_stops_early_leaves_one_copy_unused_and_empty_data_copies_nothing():
    log = []
    for batch in Prefetcher(range(10), FakeCopier(log)):
        if batch == 1:
            break
    assert [b for kind, b in log if kind == "start"] == [0, 1, 2]
    assert len(Prefetcher(range(10), FakeCopier([]))) == 10
    empty = []
    assert list(Prefetcher([], FakeCopier(empty))) == [] and empty == []


def test_on_the_cpu_the_batches_pass_through_untouched():
    batches = [(torch.ones(2), None, None)]
    assert prefetched(batches, torch.device("cpu")) is batches


def test_fit_hands_the_prefetched_batches_to_the_step(monkeypatch, rng):
    """fit, evaluate and predict take their batches through `prefetched`, in order."""
    from lamina.models import training

    seen = []

    def logging_prefetched(batches, device):
        for batch in batches:
            seen.append(len(batch[0]))
            yield batch

    monkeypatch.setattr(training, "prefetched", logging_prefetched)
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((10, 3)).astype("float32"), rng.integers(0, 2, 10)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    model.evaluate(x, y, batch_size=4, verbose=0)
    model.predict(np.concatenate([x, x]), batch_size=8, verbose=0)
    assert seen == [4, 4, 2, 4, 4, 2, 8, 8, 4]
