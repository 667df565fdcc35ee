"""`lamina tsc DATASET --model fcn …`: train a classifier under its paper's protocol and report.

Prints the model summary, one progress bar over the epochs, the test accuracy (mean ± std over
runs) beside the published figure, and writes the model, a history plot and results.json to --out.
`--ablate-norm` trains the same model with each normalization and prints a comparison table.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lamina.callbacks import Callback
from lamina.tsc.models import MODELS
from lamina.tsc.published import published

NORMS = ("bn", "ln", "in", "gn", "sn")


class EpochProgress(Callback):
    """One bar over all epochs (a run is hundreds of them), with the latest loss and accuracy;
    for an ensemble, one bar per member in turn."""

    def __init__(self, console: Console, label: str, members: int = 1):
        super().__init__()
        self.console, self.members, self.trained = console, members, 0
        self.base_label = self.label = label

    def on_train_begin(self, logs=None):
        self.trained += 1
        if self.members > 1:
            self.label = f"{self.base_label} member {self.trained}/{self.members}"
        self.bar = Progress(TextColumn(self.label), MofNCompleteColumn(), BarColumn(bar_width=30),
                            TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                            console=self.console, transient=not self.console.is_terminal)
        self.task = self.bar.add_task("", total=self.params["epochs"], status="")
        self.bar.start()
        self.every = max(1, self.params["epochs"] // 10)

    def on_epoch_end(self, epoch, logs=None):
        status = f"loss {logs['loss']:.4f} acc {logs.get('accuracy', float('nan')):.3f}"
        self.bar.update(self.task, completed=epoch + 1, status=status)
        if not self.console.is_terminal and ((epoch + 1) % self.every == 0):
            print(f"  {self.label} epoch {epoch + 1}/{self.params['epochs']} - {status}", flush=True)

    def on_train_end(self, logs=None):
        self.bar.stop()


def add_parser(sub) -> None:
    p = sub.add_parser("tsc", help="train a time-series classifier on a UCR/UEA dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="a UCR/UEA dataset aeon ships, e.g. GunPoint")
    p.add_argument("--model", choices=sorted(MODELS), default="fcn")
    p.add_argument("--epochs", type=int, default=None,
                   help="shorten the protocol (default: the paper's epoch count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="runs with seeds seed, seed+1, …")
    p.add_argument("--norm", choices=NORMS, default=None, help="normalization (default: the paper's)")
    p.add_argument("--ablate-norm", action="store_true", help="compare bn, ln, in, gn and sn")
    p.add_argument("--out", default=None, help="folder for the model, plot and results.json")
    p.add_argument("--uncertainty", action="store_true",
                   help="also report NLL, ECE and a reliability diagram for softmax, MC dropout and ensemble")
    p.add_argument("--temperature-scaling", action="store_true",
                   help="hold out 20%% of the training set, fit a temperature on it and report the "
                        "calibrated numbers too (implies --uncertainty)")
    p.set_defaults(run=run)


def _mean_std(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _runs(args, data, norm, console, show_summary):
    from lamina.tsc.protocol import build_model, train_and_evaluate

    results, last = [], None
    for r in range(args.runs):
        seed = args.seed + r
        label = f"{args.model}/{norm or 'default'} seed {seed}"
        model = build_model(args.model, data, norm, seed)
        if show_summary and r == 0:
            model.summary()
        progress = EpochProgress(console, label, members=len(getattr(model, "members", [model])))
        model, history, result = train_and_evaluate(args.model, data, epochs=args.epochs, seed=seed,
                                                    norm=norm, verbose=0, extra_callbacks=[progress],
                                                    model=model)
        best = ", ".join(str(e + 1) for e in np.atleast_1d(result["best_epoch"]))
        console.print(f"  {label}: test accuracy {result['test_accuracy']:.4f} "
                      f"(weights of epoch {best}, {result['seconds']:.0f}s)")
        results.append(result)
        last = (model, history)
    return results, last


def run(args) -> int:
    from lamina.datasets import load_ucr
    from lamina.tsc import uncertainty

    console = Console(soft_wrap=True)
    data = load_ucr(args.dataset)
    console.print(f"{data}")
    data, held_out = uncertainty.prepare(args, data, console)
    default_norm = None if args.model == "mlp" else "bn"
    if args.ablate_norm:
        return _ablate(args, data, console)
    results, (model, history) = _runs(args, data, args.norm or default_norm, console, show_summary=True)
    accs = [r["test_accuracy"] for r in results]
    mean, std = _mean_std(accs)
    line = f"{args.dataset} {args.model}: test accuracy {mean:.4f} ± {std:.4f} over {len(accs)} run(s)"
    ref = published(args.dataset, args.model)
    if ref is not None:
        pub_std = f" ± {ref[1]:.3f}" if ref[1] is not None else ""
        line += f"   (published: {ref[0]:.3f}{pub_std})"
    console.print(line)
    if args.out:
        _write_outputs(args, model, history, results, mean, std, ref, console)
    uncertainty.report(args, model, data, held_out, console)
    return 0


def _ablate(args, data, console) -> int:
    table = Table(title=f"{args.dataset} {args.model}: normalization ablation")
    for col in ("norm", "test accuracy", "train loss", "seconds"):
        table.add_column(col, justify="right")
    rows = []
    for norm in NORMS:
        start = time.perf_counter()
        results, _ = _runs(args, data, norm, console, show_summary=False)
        mean, std = _mean_std([r["test_accuracy"] for r in results])
        loss = statistics.fmean(r["train_loss"] for r in results)
        seconds = time.perf_counter() - start
        rows.append({"norm": norm, "accuracy_mean": mean, "accuracy_std": std, "train_loss": loss,
                     "seconds": seconds})
        table.add_row(norm, f"{mean:.4f} ± {std:.4f}", f"{loss:.4f}", f"{seconds:.0f}")
    console.print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "ablation.json"), "w") as f:
            json.dump(rows, f, indent=2)
    return 0


def _write_outputs(args, model, history, results, mean, std, ref, console):
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"{args.dataset}_{args.model}")
    model.save(f"{stem}.lamina")
    import matplotlib

    matplotlib.use("Agg")
    from lamina import plots

    plots.history(history).savefig(f"{stem}_history.png", dpi=100, bbox_inches="tight")
    summary = {"dataset": args.dataset, "model": args.model, "runs": results,
               "test_accuracy_mean": mean, "test_accuracy_std": std,
               "published": None if ref is None else {"mean": ref[0], "std": ref[1]}}
    with open(f"{stem}_results.json", "w") as f:
        json.dump(summary, f, indent=2)
    console.print(f"wrote {stem}.lamina, {stem}_history.png, {stem}_results.json")
