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


def main() -> None:
    root, name = sys.argv[1], sys.argv[2]
    sys.path.insert(0, str(Path(root) / "src"))
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    import torch

    import lamina
    from bench import workloads

    torch.set_num_threads(2)
    workload = workloads.get(name)
    x, y = workloads.dataset(workload, 1024)
    model = workloads.keras_style_model(lamina, workload)
    model.set_weights(workloads.initial_weights(workload))
    model.compile(optimizer=lamina.optimizers.Adam(workloads.LEARNING_RATE),
                  loss="sparse_categorical_crossentropy")
    model.fit(x[:256], y[:256], batch_size=workload.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=workload.batch_size, epochs=2, verbose=0)
    print(f"{name} {round(2 * len(y) / (time.perf_counter() - start))} samples/s ({lamina.__file__})")


if __name__ == "__main__":
    main()
