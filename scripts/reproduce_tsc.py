"""Reproduce the published UCR accuracies of the zoo: FCN, ResNet, MLP, LSTM-FCN, Inception /
InceptionTime, H-Inception / H-InceptionTime, LITE / LITETime (not run by CI: hours to days at
full protocol on a 2-core CPU).

    python scripts/reproduce_tsc.py [--datasets GunPoint ItalyPowerDemand OSULeaf]
        [--models fcn resnet mlp] [--seeds 0 1 2] [--epochs N] [--out scripts/results] [--report]

Each (dataset, model, seed) is one run of `lamina.tsc.train_and_evaluate` under the paper's
protocol (`--epochs` shortens every run to N epochs: the table shows "N of FULL"); results are
appended to a JSON lines file as they finish, with the device and thread count of the run, so an
interrupted reproduction resumes where it stopped, and a markdown table of lamina's mean ± std
beside the published mean is written at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from lamina.datasets import load_ucr
from lamina.tsc import PROTOCOLS, published, train_and_evaluate


def _key(r):
    return r["dataset"], r["model"], r["seed"], r["epochs"]


def _device_name(device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine() or "cpu"
        name = f"{cpu} CPU, {torch.get_num_threads()} thread(s)"
    return f"{name}, torch {torch.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["GunPoint", "ItalyPowerDemand", "OSULeaf"])
    parser.add_argument("--models", nargs="+", default=["fcn", "resnet", "mlp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the paper's)")
    parser.add_argument("--out", default="scripts/results")
    parser.add_argument("--report", action="store_true", help="only write the table of the runs so far")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[_key(r)] = r
    for dataset in [] if args.report else args.datasets:
        data = load_ucr(dataset)
        for model in args.models:
            for seed in args.seeds:
                epochs = args.epochs or PROTOCOLS[model].epochs
                if (dataset, model, seed, epochs) in done:
                    continue
                start = time.perf_counter()
                trained, _, result = train_and_evaluate(model, data, epochs=epochs, seed=seed,
                                                        norm=None if model == "mlp" else "bn", verbose=0)
                result["device"] = _device_name(trained._device())
                print(f"{dataset} {model} seed {seed}: {result['test_accuracy']:.4f} "
                      f"({time.perf_counter() - start:.0f}s)", flush=True)
                done[_key(result)] = result
                with log.open("a") as f:
                    f.write(json.dumps(result) + "\n")
    rows = ["| dataset | model | epochs (of the paper's) | lamina mean ± std (runs) | published | device |",
            "|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        for model in args.models:
            # Every epoch count run so far (a shortened run is a row of its own, never mixed in).
            for epochs in sorted({e for (d, m, _, e) in done if (d, m) == (dataset, model)}):
                runs = [r for (d, m, _, e), r in done.items() if (d, m, e) == (dataset, model, epochs)]
                accs = [r["test_accuracy"] for r in runs]
                std = statistics.stdev(accs) if len(accs) > 1 else 0.0
                ref = published(dataset, model)
                ref_text = "—" if ref is None else f"{ref[0]:.3f}" + (f" ± {ref[1]:.3f}" if ref[1] else "")
                devices = "; ".join(sorted({r.get("device", "?") for r in runs}))
                rows.append(f"| {dataset} | {model} | {epochs} of {PROTOCOLS[model].epochs} | "
                            f"{statistics.fmean(accs):.3f} ± {std:.3f} ({len(accs)}) | {ref_text} | "
                            f"{devices} |")
    table = "\n".join(rows)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
