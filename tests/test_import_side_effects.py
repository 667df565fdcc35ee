"""`import lamina` changes no process-wide setting: a fresh interpreter imports what lamina
depends on, records every setting a user may rely on, imports lamina (and fits a model, whose
loop must hand torch's thread count back), and compares."""

import json
import os
import subprocess
import sys

PROBE = r'''
import ctypes, json, logging, os, random, sys, warnings
import numpy as np
import torch

mallopt_calls = []
real_cdll = ctypes.CDLL


class Recording(real_cdll):
    """A loaded library whose mallopt, if looked up, records its calls."""

    def __getattr__(self, name):
        found = super().__getattr__(name)
        if name != "mallopt":
            return found

        def mallopt(*args):
            mallopt_calls.append(args)
            return found(*args)

        return mallopt


ctypes.CDLL = Recording


def settings():
    return {
        "threads": torch.get_num_threads(),
        "interop threads": torch.get_num_interop_threads(),
        "default dtype": str(torch.get_default_dtype()),
        "grad enabled": torch.is_grad_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "anomaly detection": torch.is_anomaly_enabled(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        # flush-denormal mode: a subnormal float32 survives a multiplication only without it
        "denormals kept": bool((torch.tensor([1e-40]) * 1.0).item() != 0),
        "mkldnn enabled": torch.backends.mkldnn.enabled,
        "torch rng": torch.random.get_rng_state().sum().item(),
        "numpy rng": int(np.random.get_state()[1].sum()),
        "python rng": hash(random.getstate()),
        "numpy errors": np.geterr(),
        "numpy print": str(np.get_printoptions()),
        "torch print": str(vars(torch._tensor_str.PRINT_OPTS)),
        "environment": dict(os.environ),
        "warnings filters": [str(f) for f in warnings.filters],
        "logging": [logging.getLogger().level, len(logging.getLogger().handlers)],
        "recursion limit": sys.getrecursionlimit(),
        "mallopt calls": len(mallopt_calls),
    }


# torch's own first optimizer step sets TORCHINDUCTOR_CACHE_DIR and a sympy warnings filter (it
# imports torch._dynamo): the baseline includes it, so that only lamina's changes show.
layer = torch.nn.Linear(3, 2)
layer(torch.zeros(1, 3)).sum().backward()
torch.optim.SGD(layer.parameters(), 0.1).step()
before = settings()
import lamina  # noqa: E402
after_import = settings()
model = lamina.Sequential([lamina.layers.Input((3,)), lamina.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32"), batch_size=2, verbose=0)
model.predict(np.zeros((4, 3), "float32"), verbose=0)
after_fit = settings()
after_fit.pop("torch rng")  # fit draws (the shuffle, the initializers)
after_fit.pop("python rng")
print(json.dumps({
    "import": {k: [before[k], after_import[k]] for k in before if before[k] != after_import[k]},
    "fit": {k: [before[k], v] for k, v in after_fit.items() if before[k] != v},
}, default=str))
'''


def test_importing_lamina_and_fitting_change_no_process_setting():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMINA_", "OMP_", "MKL_"))}
    env["KERAS_BACKEND"] = "torch"
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    changed = json.loads(out.stdout.strip().splitlines()[-1])
    assert changed == {"import": {}, "fit": {}}
