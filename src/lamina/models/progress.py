"""The Keras-like progress display of fit/evaluate: one bar per epoch, with loss and metrics."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lamina.callbacks import Callback

_REFRESH_S = 0.1  # values are read back from the device at most this often


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {float(v):.4f}" for k, v in logs.items())


class ProgressBar(Callback):
    """verbose=1: a live bar per epoch; verbose=2: one line per epoch."""

    def __init__(self, verbose=1, console: Console | None = None):
        super().__init__()
        self.verbose = verbose
        self.console = console or Console()
        self.progress = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        if self.verbose == 1:
            epochs = self.params.get("epochs", 1)
            self.console.print(f"Epoch {epoch + 1}/{epochs}")
            self.progress = Progress(
                MofNCompleteColumn(), BarColumn(bar_width=20), TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"), console=self.console, transient=False,
            )
            self.task = self.progress.add_task("", total=self.params.get("steps") or None,
                                               metrics="")
            self.progress.start()
            self.last_refresh = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self.last_refresh >= _REFRESH_S:
            self.last_refresh = now
            self.progress.update(self.task, completed=batch + 1, metrics=format_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.epoch_start
        steps = self.params.get("steps") or 1
        per_step = f"{elapsed:.0f}s {1000 * elapsed / steps:.0f}ms/step"
        if self.progress is not None:
            self.progress.update(self.task, completed=self.params.get("steps") or 1,
                                 total=self.params.get("steps") or 1,
                                 metrics=f"{per_step} - {format_logs(logs)}")
            self.progress.stop()
            self.progress = None
        elif self.verbose == 2:
            epochs = self.params.get("epochs", 1)
            self.console.print(f"Epoch {epoch + 1}/{epochs} - {per_step} - {format_logs(logs)}")
