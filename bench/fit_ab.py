"""Training samples/s of lamina's `fit` on one reference model, from a given lamina source tree:
for A/B comparisons of two commits in alternating processes, e.g.

    git worktree add /tmp/before <commit>
    for r in 1 2 3; do
        python bench/fit_ab.py /tmp/before mlp; python bench/fit_ab.py . mlp
    done

One warm-up epoch on 256 samples, then 2 epochs of 1024 (the bench's model, weights and data;
2 threads). bench/run.py is the full comparison with the peers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def fit_samples_per_second(lamina, name: str, x, y, warmup: int, epochs: int = 2) -> float:
    """lamina's `fit` on the bench's model `name` from its starting weights: one untimed epoch on
    the first `warmup` samples, then samples/s over `epochs` epochs of all of (x, y)."""
    from bench import workloads

    workload = workloads.get(name)
    model = workloads.keras_style_model(lamina, workload)
    model.set_weights(workloads.initial_weights(workload))
    model.compile(optimizer=lamina.optimizers.Adam(workloads.LEARNING_RATE, epsilon=workloads.ADAM_EPSILON),
                  loss="sparse_categorical_crossentropy")
    model.fit(x[:warmup], y[:warmup], batch_size=workload.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=workload.batch_size, epochs=epochs, verbose=0)
    return epochs * len(y) / (time.perf_counter() - start)


def main() -> None:
    root, name = sys.argv[1], sys.argv[2]
    sys.path.insert(0, str(Path(root) / "src"))
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    import torch

    import lamina
    from bench import workloads

    torch.set_num_threads(2)
    x, y = workloads.dataset(workloads.get(name), 1024)
    speed = fit_samples_per_second(lamina, name, x, y, warmup=256)
    print(f"{name} {round(speed)} samples/s ({lamina.__file__})")


if __name__ == "__main__":
    main()
