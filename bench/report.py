"""Turn the workers' raw results into the comparison: medians, ratios to the best peer, tables, plot.

`summarize(raw)` is pure (raw results in, summary out); `markdown(...)`, `print_tables(...)` and
`plot_scaling(...)` render a summary.
"""

from __future__ import annotations

import statistics

import numpy as np

# Initial losses of the same model, weights and data agree to float32 rounding; a larger spread
# means two frameworks are not doing the same work.
LOSS_TOLERANCE = 1e-4


def samples_per_second(job: dict) -> float:
    """Throughput of one training job: its samples over the median epoch after the first."""
    return job["n"] / statistics.median(job["epoch_seconds"][1:])


def _median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(value, best):
    return None if value is None or not best else value / best


def summarize(raw: dict) -> dict:
    frameworks = raw["frameworks"]
    training, predict, losses = [], [], {}
    for model in raw["settings"]["models"]:
        rows = []
        for fw_id in raw["settings"]["frameworks"]:
            runs = [r for r in raw["compare"] if r["model"] == model and r["framework"] == fw_id]
            ok = [r for r in runs if "error" not in r]
            throughputs = [samples_per_second(r["jobs"][0]) for r in ok]
            rows.append({
                "model": model, "framework": fw_id, "label": frameworks[fw_id]["label"],
                "peer": frameworks[fw_id]["peer"], "runs": throughputs,
                "samples_per_s": statistics.median(throughputs) if ok else None,
                "min": min(throughputs, default=None), "max": max(throughputs, default=None),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in ok) if ok else None,
                "load_average": _median_of(r.get("load_average") for r in ok),
                "initial_loss": ok[0].get("initial_loss") if ok else None,
                "errors": [r["error"] for r in runs if "error" in r],
                "_ok": ok,
            })
        best = max((r["samples_per_s"] for r in rows if r["peer"] and r["samples_per_s"]), default=None)
        for row in rows:
            row["vs_best_peer"] = _ratio(row["samples_per_s"], best)
        training += rows
        predict += _predict_rows(model, rows)
        losses[model] = _loss_check(rows)
    for row in training:
        del row["_ok"]
    return {"training": training, "predict": predict, "initial_loss": losses,
            "scaling": _scaling(raw.get("scaling", []))}


def _predict_rows(model, training_rows):
    rows = []
    for t in training_rows:
        paths = {}
        for run in t["_ok"]:
            for path, stats in run.get("predict_ms", {}).items():
                paths.setdefault(path, []).append(stats)
        rows += [{"model": model, "framework": t["framework"], "label": t["label"], "peer": t["peer"],
                  "path": path, "p50_ms": statistics.median(s["p50"] for s in runs),
                  "mean_ms": _median_of(s.get("mean") for s in runs), "runs": [s["p50"] for s in runs]}
                 for path, runs in paths.items()]
    # As for throughput, above 1 means faster than the best peer; the mean as well as the median,
    # since on a busy machine a thread count can win the median and lose the mean (rare long calls).
    for key, ratio in (("p50_ms", "vs_best_peer"), ("mean_ms", "mean_vs_best_peer")):
        best = min((r[key] for r in rows if r["peer"] and r[key] is not None), default=None)
        for row in rows:
            row[ratio] = None if row[key] is None else _ratio(best, row[key])
    return rows


def _loss_check(rows):
    values = {r["framework"]: r["initial_loss"] for r in rows if r["initial_loss"] is not None}
    if not values:
        return {"values": {}, "spread": None, "agree": None}
    spread = max(values.values()) - min(values.values())
    scale = max(1.0, max(abs(v) for v in values.values()))
    return {"values": values, "spread": spread, "agree": spread <= LOSS_TOLERANCE * scale}


def _scaling(results):
    curves = []
    for r in results:
        if "error" in r:
            curves.append({"model": r["model"], "framework": r["framework"], "error": r["error"]})
            continue
        by_batch = [j for j in r["jobs"] if j["kind"] == "batch_size"]
        by_size = [j for j in r["jobs"] if j["kind"] == "dataset_size"]
        curve = {"model": r["model"], "framework": r["framework"],
                 "batch_size": [{"batch_size": j["batch_size"], "samples_per_s": samples_per_second(j)}
                                for j in by_batch],
                 "dataset_size": [{"n": j["n"], "epoch_s": statistics.median(j["epoch_seconds"][1:])}
                                  for j in by_size]}
        if len(by_size) >= 2:
            n = np.array([p["n"] for p in curve["dataset_size"]], dtype=float)
            t = np.array([p["epoch_s"] for p in curve["dataset_size"]])
            slope, intercept = np.polyfit(n, t, 1)
            residual = t - (slope * n + intercept)
            total = ((t - t.mean()) ** 2).sum()
            curve["linear_fit"] = {"us_per_sample": slope * 1e6, "intercept_s": intercept,
                                   "r2": float(1 - (residual ** 2).sum() / total) if total else 1.0}
        curves.append(curve)
    return curves


# ----------------------------------------------------------------- rendering
def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def _times(value):
    return "-" if value is None else f"{value:.2f}x"


def training_table(summary):
    """(header, rows) of the training table; shared by the terminal and the markdown renderings."""
    header = ["model", "framework", "samples/s", "range of runs", "vs best peer", "peak RSS MB",
              "initial loss", "load"]
    rows = []
    for r in summary["training"]:
        spread = (f"{r['min']:.0f}-{r['max']:.0f}" if r["samples_per_s"] is not None
                  else "failed" if r["errors"] else "not run")
        rows.append([r["model"], r["label"], _num(r["samples_per_s"], ".0f"), spread,
                     _times(r["vs_best_peer"]), _num(r["peak_rss_mb"], ".0f"),
                     _num(r["initial_loss"], ".6f"), _num(r["load_average"], ".1f")])
    return header, rows


def predict_table(summary):
    header = ["model", "framework", "call", "p50 ms", "vs best peer", "mean ms", "vs best peer (mean)"]
    rows = [[r["model"], r["label"], r["path"], f"{r['p50_ms']:.3f}", _times(r["vs_best_peer"]),
             "-" if r.get("mean_ms") is None else f"{r['mean_ms']:.3f}", _times(r.get("mean_vs_best_peer"))]
            for r in summary["predict"]]
    return header, rows


def batch_table(summary):
    sizes = sorted({p["batch_size"] for c in summary["scaling"] for p in c.get("batch_size", [])})
    header = ["model", "framework", *[f"batch {b}" for b in sizes]]
    rows = []
    for c in summary["scaling"]:
        values = {p["batch_size"]: p["samples_per_s"] for p in c.get("batch_size", [])}
        rows.append([c["model"], c["framework"], *[_num(values.get(b), ".0f") for b in sizes]])
    return header, rows


def size_table(summary):
    sizes = sorted({p["n"] for c in summary["scaling"] for p in c.get("dataset_size", [])})
    header = ["model", "framework", *[f"n={n}" for n in sizes], "us/sample (fit)", "R^2"]
    rows = []
    for c in summary["scaling"]:
        values = {p["n"]: p["epoch_s"] for p in c.get("dataset_size", [])}
        fit = c.get("linear_fit", {})
        rows.append([c["model"], c["framework"], *[_num(values.get(n), ".3f") for n in sizes],
                     _num(fit.get("us_per_sample"), ".0f"), _num(fit.get("r2"), ".4f")])
    return header, rows


def loss_notes(summary) -> list[str]:
    notes = []
    for model, check in summary["initial_loss"].items():
        if check["agree"] is None:
            continue
        verdict = "agree" if check["agree"] else "DISAGREE: the frameworks are not running the same model"
        notes.append(f"{model}: initial losses {verdict} (spread {check['spread']:.2e}).")
    return notes


def error_notes(summary) -> list[str]:
    notes = [f"{r['model']} / {r['label']}: {err}" for r in summary["training"] for err in r["errors"]]
    notes += [f"scaling {c['model']} / {c['framework']}: {c['error']}"
              for c in summary["scaling"] if "error" in c]
    return notes


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(raw, summary, labels) -> str:
    meta, settings = raw["meta"], raw["settings"]
    parts = [
        f"# lamina benchmark, {meta['started']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Commit: {meta['commit']}; machine: {meta['cpu']} ({meta['cpus']} cores), "
        f"{settings['threads']} threads per framework; load average {meta['load_before']} before, "
        f"{meta['load_after']} after; {meta['versions']}.",
        *([f"Busy machine: {meta['competing_process']}.", ""] if meta.get("competing_process") else [""]),
        f"Training: n = {settings['n']} random samples, {settings['epochs']} epochs, samples/s over the "
        f"median epoch after the first; median of {settings['repeats']} interleaved runs, each framework "
        "in its own process. Ratios: above 1 is faster than the best peer. Load: the median 1-minute "
        "load average as the runs ended (about the thread count when the machine was the bench's alone).",
        "",
        *[f"- {name}: {title}" for name, title in labels.items()],
        "",
        _md_table(*training_table(summary)),
        "",
        f"Single-sample prediction latency, p50 and mean of {settings['predict_calls']} calls "
        "(median over the runs):",
        "",
        _md_table(*predict_table(summary)),
    ]
    if summary["scaling"]:
        parts += ["", "Scaling, samples/s against batch size "
                      f"(n = {settings['scaling_n']}, {settings['scaling_epochs']} epochs):", "",
                  _md_table(*batch_table(summary)), "",
                  "Epoch seconds against dataset size (at the model's batch size; linear is the goal):", "",
                  _md_table(*size_table(summary))]
    notes = loss_notes(summary) + error_notes(summary)
    if notes:
        parts += ["", *[f"- {n}" for n in notes]]
    return "\n".join(parts) + "\n"


def print_tables(console, summary, labels) -> None:
    from rich.table import Table

    def show(title, header, rows, bold_lamina=True):
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 2 or name == "call" else "right")
        for i, row in enumerate(rows):
            if i and row[0] != rows[i - 1][0]:
                table.add_section()
            lamina_row = bold_lamina and str(row[1]).startswith("lamina")
            table.add_row(*map(str, row), style="bold" if lamina_row else None)
        console.print(table)

    for name, title in labels.items():
        console.print(f"{name}: {title}")
    show("Training throughput", *training_table(summary))
    show("Single-sample predict latency", *predict_table(summary))
    if summary["scaling"]:
        show("Samples/s against batch size", *batch_table(summary))
        show("Epoch seconds against dataset size", *size_table(summary))
    for note in loss_notes(summary) + error_notes(summary):
        console.print(note)


def plot_scaling(summary, path) -> bool:
    """Samples/s against batch size and epoch time against dataset size, one column per model."""
    curves = [c for c in summary["scaling"] if "error" not in c]
    if not curves:
        return False
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(c["model"] for c in curves))
    fig, axes = plt.subplots(2, len(models), figsize=(4.5 * len(models), 7.5), squeeze=False)
    for col, model in enumerate(models):
        top, bottom = axes[0][col], axes[1][col]
        for c in (c for c in curves if c["model"] == model):
            if c["batch_size"]:
                top.plot([p["batch_size"] for p in c["batch_size"]],
                         [p["samples_per_s"] for p in c["batch_size"]], marker="o", label=c["framework"])
            if c["dataset_size"]:
                bottom.plot([p["n"] for p in c["dataset_size"]], [p["epoch_s"] for p in c["dataset_size"]],
                            marker="o", label=c["framework"])
        top.set(xscale="log", yscale="log", title=model, xlabel="batch size", ylabel="samples/s")
        bottom.set(xlabel="samples per epoch", ylabel="epoch seconds")
        bottom.set_xlim(left=0)
        bottom.set_ylim(bottom=0)
        top.legend()
        bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
