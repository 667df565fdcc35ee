"""lamina against the frameworks a user would pick instead, on the three reference models.

    python bench/run.py                       # everything (about 10 minutes on a quiet 2-core machine)
    python bench/run.py --quick               # a few minutes: smaller data, one run
    python bench/run.py --models fcn,mlp --frameworks lamina,torch --repeats 5 --parts compare
    python bench/run.py --busy                # the same with another process spinning on one core

Training throughput (samples/s with lamina `fit`, a hand-written torch loop, a torch.compile'd
step, Keras 3 on torch and on JAX), single-sample prediction latency, peak RSS, and the scaling
study (samples/s against batch size, epoch time against dataset size). Every measurement runs in
a fresh process of its own (bench/worker.py), the frameworks interleaved (A B C D E, A B C D E,
...) so that a change in the machine's load falls on all of them alike. Results go to the
terminal and to bench/results/ (JSON, markdown, scaling plot). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script (`python bench/run.py`, as `make bench` does)
    sys.path.insert(0, str(ROOT))

from bench import report, workloads  # noqa: E402
from bench.frameworks import FRAMEWORKS, LAMINA_SWITCH, Framework, lamina_switch  # noqa: E402

PARTS = ("compare", "scaling")
FULL = {"repeats": 3, "n": 2048, "epochs": 5, "predict_calls": 200, "batch_sizes": "1,4,16,64,256",
        "scaling_n": 512, "dataset_sizes": "256,512,1024,2048,4096", "scaling_epochs": 3}
QUICK = {"repeats": 1, "n": 256, "epochs": 3, "predict_calls": 50, "batch_sizes": "1,4,16,64",
         "scaling_n": 128, "dataset_sizes": "128,256,512", "scaling_epochs": 2}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, one run: " + json.dumps(QUICK))
    parser.add_argument("--models", default=",".join(workloads.WORKLOADS), help="default: %(default)s")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="default: %(default)s")
    parser.add_argument("--parts", default=",".join(PARTS), help="compare, scaling (default: both)")
    parser.add_argument("--repeats", type=int, help=f"interleaved runs per framework ({FULL['repeats']})")
    parser.add_argument("--n", type=int, help=f"training samples ({FULL['n']})")
    parser.add_argument("--epochs", type=int, help=f"epochs; the first is not timed ({FULL['epochs']})")
    parser.add_argument("--predict-calls", type=int, help=f"timed single-sample predictions "
                                                          f"({FULL['predict_calls']}; 0: none)")
    parser.add_argument("--scaling-frameworks", default="lamina,torch", help="default: %(default)s")
    parser.add_argument("--batch-sizes", help=f"scaling batch sizes ({FULL['batch_sizes']})")
    parser.add_argument("--scaling-n", type=int, help=f"samples per batch-size point ({FULL['scaling_n']})")
    parser.add_argument("--dataset-sizes", help=f"scaling dataset sizes ({FULL['dataset_sizes']})")
    parser.add_argument("--scaling-epochs", type=int,
                        help=f"epochs per scaling point ({FULL['scaling_epochs']})")
    parser.add_argument("--threads", type=int, default=min(2, len(_allowed_cpus())),
                        help="cores and threads per framework (default: %(default)s)")
    parser.add_argument("--lamina-compile", type=json.loads, default=None, metavar="JSON",
                        help="adds a lamina row trained after compile(**JSON), "
                             'e.g. \'{"jit_compile": true}\'')
    parser.add_argument("--busy", action="store_true",
                        help="run everything with a competing process spinning on one of the workers' cores")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend of the torch.compile row (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per worker (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="default: %(default)s")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="measure nothing: render the tables of a saved (or .partial.json) result")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.models, args.parts = _names(args.models), _names(args.parts)
    args.frameworks, args.scaling_frameworks = _names(args.frameworks), _names(args.scaling_frameworks)
    args.batch_sizes, args.dataset_sizes = _ints(args.batch_sizes), _ints(args.dataset_sizes)
    _validate(parser, args)
    return args


def _validate(parser, args) -> None:
    for model in args.models:
        if model not in workloads.WORKLOADS:
            parser.error(f"unknown model {model!r} in --models; choose from {sorted(workloads.WORKLOADS)}")
    for fw in args.frameworks + args.scaling_frameworks:
        if fw not in FRAMEWORKS:
            parser.error(f"unknown framework {fw!r}; choose from {sorted(FRAMEWORKS)}")
    for part in args.parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r} in --parts; choose from {list(PARTS)}")
    if args.epochs < 2 or args.scaling_epochs < 2:
        parser.error("--epochs and --scaling-epochs must be at least 2: the first epoch is not timed")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if args.batch_sizes and args.scaling_n < max(args.batch_sizes):
        parser.error(f"--scaling-n ({args.scaling_n}) must be at least the largest batch size "
                     f"({max(args.batch_sizes)})")
    largest_batch = max(workloads.get(m).batch_size for m in args.models)
    if largest_batch > min(args.dataset_sizes + [args.n]):
        parser.error(f"--n and --dataset-sizes must hold at least one batch ({largest_batch} samples)")


def _allowed_cpus() -> set:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


# The competing process of --busy: a Python spin loop on one core, as a data-loading worker, a
# notebook kernel or another user's job would hold it.
SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


@contextlib.contextmanager
def competing_process(busy: bool):
    """With `busy`, a process spinning on the first of the cores the workers pin themselves to
    (bench/worker.py), for the duration; yields it (its last argument is the core), or None."""
    if not busy:
        yield None
        return
    core = min(_allowed_cpus())
    spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(core)])
    try:
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


def run_worker(framework: Framework, spec: dict, threads: int, timeout: float) -> dict:
    """One measurement in a fresh process; its JSON result, or {"error": ...}.

    The worker imports lamina from this checkout's src/, whatever lamina the environment has.
    """
    path = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, **framework.env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, path))}
    spec = {**spec, "framework": framework.id, "module": framework.module, "threads": threads}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"error": f"exit code {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def _available(ids, registry, console) -> list[str]:
    kept = []
    for fw_id in ids:
        missing = registry[fw_id].missing()
        if missing:
            console.print(f"[yellow]skipping {fw_id}: {', '.join(missing)} not installed[/]")
        else:
            kept.append(fw_id)
    return kept


def compare(args, registry, frameworks, console, record) -> None:
    options = {"lamina_compile": args.lamina_compile or {}, "compile_backend": args.compile_backend}
    for round_ in range(1, args.repeats + 1):
        for model in args.models:
            workload = workloads.get(model)
            job = {"kind": "compare", "batch_size": workload.batch_size, "n": args.n, "epochs": args.epochs}
            for fw_id in frameworks:
                start = time.perf_counter()
                spec = {**options, "model": model, "jobs": [job], "initial_loss": True,
                        "predict_calls": args.predict_calls}
                result = {**run_worker(registry[fw_id], spec, args.threads, args.timeout),
                          "model": model, "framework": fw_id, "round": round_}
                record("compare", result)
                figure = (f"[red]{result['error']}[/]" if "error" in result
                          else f"{report.samples_per_second(result['jobs'][0]):8.0f} samples/s")
                setting = (result.get("jobs") or [{}])[0].get("setting")  # lamina's thread probe
                if setting:
                    figure += f" [{setting}]"
                console.print(f"round {round_}/{args.repeats}  {model:<5} {fw_id:<14} {figure}  "
                              f"({time.perf_counter() - start:.0f} s)", soft_wrap=True)


def scaling(args, registry, frameworks, console, record) -> None:
    options = {"lamina_compile": args.lamina_compile or {}, "compile_backend": args.compile_backend}
    for model in args.models:
        workload = workloads.get(model)
        jobs = [{"kind": "batch_size", "batch_size": b, "n": args.scaling_n, "epochs": args.scaling_epochs}
                for b in args.batch_sizes]
        jobs += [{"kind": "dataset_size", "batch_size": workload.batch_size, "n": n,
                  "epochs": args.scaling_epochs} for n in args.dataset_sizes]
        for fw_id in frameworks:
            start = time.perf_counter()
            spec = {**options, "model": model, "jobs": jobs, "predict_calls": 0}
            result = {**run_worker(registry[fw_id], spec, args.threads, args.timeout),
                      "model": model, "framework": fw_id}
            record("scaling", result)
            status = f"[red]{result['error']}[/]" if "error" in result else "done"
            console.print(f"scaling  {model:<5} {fw_id:<14} {status}  ({time.perf_counter() - start:.0f} s)")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (src modified)" if dirty else "")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv=None) -> dict:
    from rich.console import Console

    args = parse_args(argv)
    console = Console(stderr=True)
    if args.report:
        raw = json.loads(args.report.read_text())
        raw["meta"].setdefault("load_after", "unknown (the run was interrupted)")
        return finish(raw, Path(str(args.report).removesuffix(".json").removesuffix(".partial")), console)
    registry = dict(FRAMEWORKS)
    frameworks = _available(args.frameworks, registry, console)
    if args.lamina_compile is not None:
        registry[LAMINA_SWITCH] = lamina_switch(args.lamina_compile)
        frameworks.insert(frameworks.index("lamina") + 1 if "lamina" in frameworks else 0, LAMINA_SWITCH)
    scaling_frameworks = _available(args.scaling_frameworks, registry, console)
    started = dt.datetime.now()
    meta = {"started": started.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["bench/run.py", *(argv or
            sys.argv[1:])]), "commit": _commit(), "cpu": _cpu_name(), "cpus": len(_allowed_cpus()),
            "load_before": _load(), "python": platform.python_version()}
    console.print(f"{meta['cpu']}, {args.threads} threads per framework, load average {meta['load_before']}")
    if not args.busy and hasattr(os, "getloadavg") and os.getloadavg()[0] > meta["cpus"] - args.threads + 0.5:
        # Measured here: torch's MLP at 2 threads fell from ~14000 to ~60 samples/s while another
        # process held one of the 2 cores (OpenMP threads spin-waiting on a descheduled peer).
        console.print("[yellow]The machine is busy: other processes want the cores the workers use. "
                      "torch-based rows (lamina included) can then run 10-100x slower; wait for a quiet "
                      "machine or pass --threads 1.[/]")
    raw = {"meta": meta,
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
           | {"frameworks": frameworks},
           "frameworks": {k: {"label": fw.label, "peer": fw.peer} for k, fw in registry.items()},
           "compare": [], "scaling": []}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"bench-{started.strftime('%Y%m%d-%H%M%S')}"
    partial = Path(f"{stem}.partial.json")

    def record(part, result):
        raw[part].append(result)
        # An interrupted run keeps what it measured: `--report` renders this file.
        partial.write_text(json.dumps(raw, indent=1))

    with competing_process(args.busy) as spinner:
        if spinner is not None:
            meta["competing_process"] = (f"one process spinning on CPU {spinner.args[-1]} (started and "
                                         "stopped by the bench)")
            console.print(f"busy mode: {meta['competing_process']}")
        if "compare" in args.parts:
            compare(args, registry, frameworks, console, record)
        if "scaling" in args.parts:
            scaling(args, registry, scaling_frameworks, console, record)
    meta["load_after"] = _load()
    out = finish(raw, stem, console)
    partial.unlink(missing_ok=True)
    return out


def finish(raw, stem: Path, console) -> dict:
    """Summarize the raw results, print the tables, write the JSON, markdown and plot beside `stem`."""
    from rich.console import Console

    raw["meta"]["versions"] = ", ".join(f"{k} {v}" for k, v in _versions(raw).items())
    summary = report.summarize(raw)
    labels = {name: workloads.get(name).title for name in raw["settings"]["models"]}
    report.print_tables(Console(), summary, labels)
    Path(f"{stem}.json").write_text(json.dumps({**raw, "summary": summary}, indent=1))
    Path(f"{stem}.md").write_text(report.markdown(raw, summary, labels))
    written = [f"{stem}.json", f"{stem}.md"]
    if report.plot_scaling(summary, f"{stem}-scaling.png"):
        written.append(f"{stem}-scaling.png")
    console.print("wrote " + ", ".join(written))
    return {"raw": raw, "summary": summary, "files": written}


def _versions(raw) -> dict:
    found = {}
    for result in raw["compare"] + raw["scaling"]:
        found.update(result.get("versions", {}))
    return found


if __name__ == "__main__":
    main()
