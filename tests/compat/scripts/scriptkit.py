"""What every compat script shares, in plain numpy/json (no keras import, so nothing to port).

seeded_weights gives a model weights drawn from a fixed numpy generator, so both frameworks start
from the same numbers (equal seeds do not give equal initialisations across frameworks);
save_results writes the script's results where the harness reads them (COMPAT_OUT).
"""

import json
import os

import numpy as np


def seeded_weights(model, seed=0, scale=0.3):
    """Set every weight of model (layer by layer, in get_weights order) from one numpy generator.

    Batch-norm layers get a positive moving variance; everything else is uniform in +-scale.
    """
    rng = np.random.default_rng(seed)
    for layer in _leaf_layers(model):
        shapes = [w.shape for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            values = [rng.uniform(0.5, 1.5, s) if i in (0, 3) else rng.uniform(-scale, scale, s)
                      for i, s in enumerate(shapes)]
        else:
            values = [rng.uniform(-scale, scale, s) for s in shapes]
        layer.set_weights([v.astype("float32") for v in values])
    return model


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def plain(value):
    """value as json-ready python: tensors and arrays become (nested) lists of floats."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) or np.isscalar(value) and isinstance(value, np.generic):
        return np.asarray(value).tolist()
    if hasattr(value, "numpy"):
        return plain(value.numpy())
    return value


def save_results(results):
    with open(os.environ.get("COMPAT_OUT", "results.json"), "w") as f:
        json.dump(plain(results), f, indent=1)
