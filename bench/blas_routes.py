"""Dense's own routes (the matrix-vector loop, oneDNN's matmul, the Dense chain) against torch's
BLAS on this CPU: the bench MLP's `fit` with the routes on and off, alternating in one process.

    python bench/blas_routes.py [--threads 1] [--rounds 4]

lamina turns the routes on only where torch's BLAS runs a generic path (MKL on a CPU that is not
Intel's, or no MKL: `lamina.kernels.linear.blas_is_generic`); this script forces each case, so
that the choice can be checked on any machine. Samples/s over two epochs of 2048 samples, after
one warm-up epoch, each round a fresh model from the bench's starting weights. Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lamina  # noqa: E402
from bench import workloads  # noqa: E402
from bench.fit_ab import fit_samples_per_second  # noqa: E402
from lamina.kernels import linear  # noqa: E402

CHOSEN = linear.blas_is_generic  # lamina's own choice, before this script forces each case


def samples_per_second(routes: bool, x, y) -> float:
    linear.blas_is_generic = (lambda: True) if routes else (lambda: False)
    return fit_samples_per_second(lamina, "mlp", x, y, warmup=len(y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    lamina.config.set_num_threads(args.threads)
    x, y = workloads.dataset(workloads.get("mlp"), 2048)
    results = {True: [], False: []}
    for _ in range(args.rounds):
        for routes in (True, False):
            results[routes].append(samples_per_second(routes, x, y))
    print(f"{os.cpu_count()} CPUs, vendor {linear._cpu_vendor() or 'unknown'}, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.2f}; lamina chooses routes {'on' if CHOSEN() else 'off'}")
    for routes, label in ((True, "routes on (loop, oneDNN)"), (False, "torch's BLAS (F.linear)")):
        runs = results[routes]
        median = statistics.median(runs)
        print(f"  {label:26s} median {median:8.0f} samples/s   runs {[round(r) for r in runs]}")


if __name__ == "__main__":
    main()
