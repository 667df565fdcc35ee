"""lamina as its users write it: the Keras code with `import lamina`, trained with `fit`."""

from __future__ import annotations

import torch

import lamina
from bench.frameworks.keras_api import FitRunner


class LaminaRunner(FitRunner):
    def setting(self) -> str:
        """The thread count and wait mode `fit`'s probe settled on, e.g. "2 threads, spinning waits"."""
        from lamina import threads

        probe = threads._probes.get(self.model, {}).get("fit")
        if probe is None:
            return f"{torch.get_num_threads()} threads, not probed"
        count, throttled = probe.chosen
        if count == 1:
            return "1 thread"
        return f"{count} threads, {'throttled' if throttled else 'spinning'} waits"

    def predict_paths(self, x1):
        tensor = torch.from_numpy(x1)

        def call():
            with torch.inference_mode():
                return self.model(tensor).numpy()

        return {"predict()": lambda: self.model.predict(x1, verbose=0), "model(x)": call}


def make_runner(framework_id, workload, weights, options):
    if options.get("compile_backend"):  # what jit_compile=True compiles with, as the torch.compile row
        from lamina.models import compiled

        compiled.BACKEND = options["compile_backend"]
    return LaminaRunner(lamina, workload, weights, **options.get("lamina_compile", {}))
