"""lamina: Keras-style deep learning on PyTorch.

Change `import keras` to `import lamina` and the model code keeps working; every layer and model
is a torch.nn.Module.
"""

from lamina import (
    _memory,  # noqa: F401  (tunes malloc at import only with LAMINA_MALLOC_TUNING=1)
    activations,
    calibration,
    callbacks,
    config,
    datasets,
    distributed,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    ops,
    optimizers,
    plots,
    random,
    regularizers,
    saving,
    utils,
)
from lamina.layers import Input
from lamina.models import MCResult, Model, Sequential
from lamina.saving import load_model
from lamina.variables import Variable

__version__ = "0.1.0"

__all__ = [
    "Input", "Model", "Sequential", "MCResult", "activations", "calibration", "callbacks", "datasets",
    "initializers", "layers", "losses", "metrics", "optimizers", "plots", "regularizers", "utils", "saving",
    "load_model", "config", "distributed", "mixed_precision",
    "ops", "random", "Variable",
]
