"""`compile(jit_compile=True)`: the default steps run their forward part through torch.compile.

The compiled region of `train_step` and `test_step` is `Trainer._forward_metrics`: the forward
pass, the loss, and the loss tracker's and compiled metrics' updates (on the device, read only
when logs are looked at). AOTAutograd compiles the backward of that graph with it, so
`loss.backward()` runs compiled code too. `predict_step`'s region is the forward pass.

The optimizer step stays outside: lamina's optimizers run torch's fused kernels (one kernel over
every weight), which torch itself declines to trace (`torch.compiler.disable`: "don't trace into
fused optimizer"), and Keras' Adam epsilon changes every step, a Python float a compiled graph
would be specialized on (a recompile per step).

Shapes: the training and evaluation graphs are static (`dynamic=False`), one per batch size a run
meets: the full batch and the last partial one, both compiled in the first epoch and reused in
every epoch after. Data whose batch size keeps changing recompiles per new size until torch's
recompile limit, after which torch runs that step eagerly (it warns). Prediction, which is called
with any number of samples, lets torch mark the batch axis dynamic once it sees a second size.

CUDA graphs: on a CUDA device the graphs use torch.compile's "reduce-overhead" mode (CUDA graphs
replay a step's kernels in one launch; the shapes are static, as above). A replayed graph reuses
its output memory, so each step is marked as a new one and predict's outputs are copied out.
Not yet measured on a GPU: `bench/gpu_check.py` compares it with the eager step.
"""

from __future__ import annotations

import warnings

import torch

from lamina.utils import tree

# torch.compile's backend: inductor, as Keras' torch backend uses. Tests of the steps' capture
# (graphs, guards, recompiles) may set "eager", which skips inductor's minutes of C++ generation.
BACKEND = "inductor"


def wanted(jit_compile, device: torch.device) -> bool:
    """Whether `compile(jit_compile=...)` asks for compiled steps on `device`. "auto" (the default)
    stays eager, as Keras' torch backend does: on the CPU the first steps pay seconds to minutes
    of compilation for no gain on lamina's small models; on CUDA, bench/gpu_check.py's
    "lamina jit" row is the measurement that would make it the default there."""
    return jit_compile is True


class CompiledSteps:
    """The torch.compile'd step functions of one model on one device. Where torch.compile fails
    on the model (a layer whose ops it cannot trace or generate code for; on torch 2.13's CPU
    build, LSTM: the fake-tensor form of mkldnn_rnn_layer), the step that failed runs again
    eagerly, with a warning naming the error, and the model's steps stay eager from then on."""

    def __init__(self, model, device: torch.device):
        self.device = device
        self.cuda_graphs = device.type == "cuda"
        self.failed = None  # the exception that turned compilation off
        self._model = model
        mode = "reduce-overhead" if self.cuda_graphs else None

        def train_forward(x, y, sample_weight):
            return model._forward_metrics(x, y, sample_weight, training=True)

        def test_forward(x, y, sample_weight):
            return model._forward_metrics(x, y, sample_weight, training=False)

        def compiled(fn, **options):
            return torch.compile(fn, backend=BACKEND, mode=mode, **options), fn

        self._train = compiled(train_forward, dynamic=False)
        self._test = compiled(test_forward, dynamic=False)
        self._predict = compiled(model.__call__)

    def __deepcopy__(self, memo):
        # The compiled functions call the model they were made for: a copy of the model makes
        # its own when it first runs.
        return None

    def forward_metrics(self, x, y, sample_weight, training):
        """`model._forward_metrics`, compiled."""
        return self._run(self._train if training else self._test, x, y, sample_weight)

    def predict(self, x):
        """`model(x)`, compiled."""
        out = self._run(self._predict, x)
        if self.cuda_graphs and self.failed is None:  # predict keeps each batch's outputs,
            # which the next replay of the graph would overwrite
            out = tree.map_structure(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)
        return out

    def _run(self, functions, *args):
        compiled_fn, eager_fn = functions
        if self.failed is not None:
            return eager_fn(*args)
        if self.cuda_graphs:  # the previous step's graph outputs may be overwritten from here on
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return compiled_fn(*args)
        except Exception as error:  # noqa: BLE001 - a mistake in the data raises again below
            result = eager_fn(*args)  # the user's own mistakes raise here, as without jit_compile
            self.failed = cause = error
            while (inner := getattr(cause, "inner_exception", None) or cause.__cause__) is not None:
                cause = inner  # torch wraps what failed: name that
            first_line = (str(cause).strip().splitlines() or [""])[0][:300]
            warnings.warn(
                f"jit_compile=True: torch.compile failed on model '{self._model.name}' "
                f"({type(cause).__name__}: {first_line}); its steps run eagerly from here on. "
                "Pass jit_compile=False to compile() to skip the attempt.", stacklevel=4)
            return result
