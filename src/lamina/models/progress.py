"""The Keras-like progress display of fit: a live bar per epoch, then one summary line.

    Epoch 3/10
    4/4 ━━━━━━━━━━━━━━━━━━━━ 0s 12ms/step - loss: 0.6931 - accuracy: 0.5000

On a terminal the bar moves while the epoch runs (values read back from the device at most ten
times a second); in a log file only the summary lines appear.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lamina.callbacks import Callback

_REFRESH_S = 0.1
_BAR = "━" * 20


def format_logs(logs) -> str:
    return " - ".join(f"{k}: {float(v):.4f}" for k, v in logs.items())


def _per_step(elapsed: float, steps: int) -> str:
    ms = 1000 * elapsed / max(steps, 1)
    return f"{elapsed:.0f}s {ms:.0f}ms/step" if ms >= 1 else f"{elapsed:.0f}s {1000 * ms:.0f}us/step"


class ProgressBar(Callback):
    """verbose=1: a live bar per epoch and a summary line; verbose=2: one line per epoch."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self.console = Console(soft_wrap=True)
        self.live = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.steps_done = 0
        if self.verbose != 1:
            return
        print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}", flush=True)
        if self.console.is_terminal:
            self.live = Progress(MofNCompleteColumn(), BarColumn(bar_width=20), TimeRemainingColumn(),
                                 TextColumn("{task.fields[metrics]}"), console=self.console,
                                 transient=True)
            self.task = self.live.add_task("", total=self.params.get("steps"), metrics="")
            self.live.start()
            self.last_refresh = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done = batch + 1
        if self.live is None:
            return
        now = time.perf_counter()
        if now - self.last_refresh >= _REFRESH_S:
            self.last_refresh = now
            self.live.update(self.task, completed=batch + 1, metrics=format_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        if self.live is not None:
            self.live.stop()
            self.live = None
        steps = self.params.get("steps") or self.steps_done or 1
        timing = _per_step(time.perf_counter() - self.epoch_start, steps)
        if self.verbose == 1:
            print(f"{steps}/{steps} {_BAR} {timing} - {format_logs(logs)}", flush=True)
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)} - {timing} - {format_logs(logs)}",
                  flush=True)
