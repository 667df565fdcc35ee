"""The contenders: lamina and the peers a user would pick instead, one module each.

A framework module is imported only inside its own worker process (bench/worker.py), so that no
framework's import, threads or memory shows in another's figures. Each module has
`make_runner(framework_id, workload, weights, options)` returning an object with

- `initial_loss(x, y)`: the mean loss of the untrained model in inference mode,
- `train(x, y, batch_size, epochs)`: train as a user of that framework would; the seconds of
  each epoch,
- `predict_paths(x1)`: name -> a call that predicts one sample and returns a numpy array.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Framework:
    id: str
    label: str
    module: str  # under bench.frameworks
    needs: tuple[str, ...]  # packages that must be importable
    env: dict = field(default_factory=dict)  # set before the worker imports anything
    peer: bool = True  # False for lamina's own rows

    def missing(self) -> list[str]:
        return [name for name in self.needs if importlib.util.find_spec(name) is None]


FRAMEWORKS = {
    fw.id: fw
    for fw in (
        Framework("lamina", "lamina fit", "lamina_fit", ("lamina",), peer=False),
        Framework("torch", "torch eager loop", "torch_loop", ("torch",)),
        Framework("torch_compile", "torch.compile step", "torch_loop", ("torch",)),
        Framework("keras_torch", "Keras 3 / torch", "keras3", ("keras",), {"KERAS_BACKEND": "torch"}),
        Framework("keras_jax", "Keras 3 / JAX", "keras3", ("keras", "jax"), {"KERAS_BACKEND": "jax"}),
    )
}
LAMINA_SWITCH = "lamina_switch"  # lamina with the compile() arguments given by --lamina-compile


def lamina_switch(compile_kwargs: dict) -> Framework:
    args = ", ".join(f"{k}={v!r}" for k, v in compile_kwargs.items())
    return Framework(LAMINA_SWITCH, f"lamina fit, compile({args})", "lamina_fit", ("lamina",), peer=False)
