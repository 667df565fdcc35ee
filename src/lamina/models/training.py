"""The training loop: compile, fit, evaluate, predict, predict_mc and the *_on_batch calls.

The step is a method of the model, as in Keras: `fit` calls `self.train_step(data)` for each
batch, `evaluate` calls `self.test_step(data)`, `predict` calls `self.predict_step(data)`; the
methods here are the defaults, and a subclass's override always runs instead. Faster routes (the
hand-derived Dense step, the torch.compile'd forward of `compile(jit_compile=True)`) are chosen
inside the default steps only.

Per step: forward, loss, backward, optimizer step, metric update — all on the device, with no
value read back to the host; logs are read only when the progress bar refreshes or an epoch ends.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lamina import config, distributed, mixed_precision, optimizers, threads
from lamina import losses as losses_mod
from lamina import metrics as metrics_mod
from lamina.callbacks import CallbackList, History
from lamina.data.adapters import adapt, checked_batch_size, checked_class_weight, checked_tensors
from lamina.data.prefetch import prefetched
from lamina.layers.base import Layer, any_layer_adds_losses, state_updates_disabled
from lamina.models import compiled
from lamina.models._dense_step import DenseStackStep
from lamina.models.compile_metrics import CompileMetrics, output_metrics
from lamina.utils import tree
from lamina.utils.step_data import pack_x_y_sample_weight, unpack_x_y_sample_weight


class LazyLogs(MutableMapping):
    """Logs read from the device only when someone looks at them: a step's returned dict (or
    the function making it), as Python numbers, nested dicts flattened (as Keras does)."""

    def __init__(self, compute):
        self._compute, self._values = compute, None

    def _get(self):
        if self._values is None:
            compute = self._compute
            self._values = python_logs(compute() if callable(compute) else compute)
        return self._values

    def __getitem__(self, key):
        return self._get()[key]

    def __setitem__(self, key, value):
        self._get()[key] = value

    def __delitem__(self, key):
        del self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def python_logs(logs) -> dict:
    """A step's logs as Python numbers where they are scalars; a nested dict's entries (such as
    "compile_metrics") become entries of the result."""
    flat = {}
    for key, value in (logs or {}).items():
        if isinstance(value, Mapping):
            flat.update(python_logs(value))
            continue
        try:
            flat[key] = float(value)
        except (TypeError, ValueError, RuntimeError):  # not a scalar: kept as it is
            flat[key] = value
    return flat


@dataclass
class MCResult:
    """Monte-Carlo dropout predictions: mean and std over the samples (axis 0 of `samples`)."""

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None = None
    entropy: np.ndarray | None = None


def _is_dropout(module) -> bool:
    if isinstance(module, Layer):
        return bool(module.is_dropout)
    return isinstance(module, nn.modules.dropout._DropoutNd)


def _resolve_verbose(verbose):
    return 1 if verbose == "auto" else int(verbose)


class _OutputSpec:
    """The loss, its weight and the metrics of one model output (`weighted[i]`: whether
    `metrics[i]` sees sample weights, i.e. came from `weighted_metrics`)."""

    def __init__(self, name, loss, weight):
        self.name, self.loss, self.weight = name, loss, weight
        self.metrics, self.weighted = [], []
        self.tracker = None  # this output's loss tracker, where the model has several


class Trainer:
    """Mixed into Model: Keras' compile/fit/evaluate/predict on torch."""

    def __init__(self):
        self.compiled = False
        self.optimizer = None
        self.stop_training = False
        self.history = None
        self._outputs_spec = None
        self._output_probe = None
        # As a Keras layer, a model takes the dtype policy in force when it is created.
        self.dtype_policy = mixed_precision.global_policy()
        self._grad_scaler = None
        self._data_parallel = None
        self._jit_compile = "auto"
        self._compiled_steps = None  # compiled.CompiledSteps, made by _place under jit_compile=True
        self._dense_step = None  # set by fit when the model allows it (_dense_step.py)
        self._loss_arg = self._loss_weights_arg = self._metrics_arg = self._weighted_metrics_arg = None
        self._loss_tracker = self._compile_metrics = None
        self._output_loss_trackers = []
        self._regularized = None  # (layer, weight name, regularizer), found once per fit
        # Found once, as Keras does: a compiled step (jit_compile=True) then reads an attribute
        # where a cached signature lookup would make torch.compile warn.
        self._compute_loss_takes_training = _takes_training(type(self).compute_loss)

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Configure the model for training.

        Args:
            optimizer: name ("adam", "sgd", …) or a lamina optimizer object.
            loss: name, Loss object or function; a list or dict for several outputs. May be left
                out where the model's `train_step`/`compute_loss` or `add_loss` supplies one.
            loss_weights: per-output weights of the total loss (list or dict).
            metrics: names or Metric objects ("accuracy" is resolved from the shapes); a list
                of lists or a dict for several outputs. Not weighted by `sample_weight` or
                `class_weight` (as in Keras).
            weighted_metrics: as `metrics`, weighted by `sample_weight` and `class_weight`.
            jit_compile: True runs the default train, test and predict steps' forward pass, loss
                and metric updates through torch.compile (its backward with it; see
                `lamina/models/compiled.py`); a `train_step` you override runs as written.
                "auto" (default) stays eager, as Keras' torch backend does, and lets `fit` run a
                step whose gradients are derived by hand where the model allows it (a Sequential
                of Dense and Dropout layers with sparse categorical cross-entropy on the CPU; see
                `lamina/models/_dense_step.py`); False always takes autograd's eager step.
            run_eagerly: True turns `jit_compile=True` off (with a warning), as in Keras.
            steps_per_execution, auto_scale_loss: accepted so that Keras code runs unchanged;
                lamina runs one step at a time (see README "Speed"), and scales float16 losses
                itself.
        """
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"compile: `jit_compile` must be True, False or 'auto'. Received: "
                             f"jit_compile={jit_compile!r}")
        if jit_compile is True and run_eagerly:
            warnings.warn("compile: `run_eagerly=True` turns `jit_compile=True` off; the steps run "
                          "eagerly.", stacklevel=2)
            jit_compile = False
        self._jit_compile = jit_compile
        self._compiled_steps = None
        self.optimizer = optimizers.get(optimizer)
        self._loss_arg, self._loss_weights_arg = loss, loss_weights
        self._metrics_arg, self._weighted_metrics_arg = metrics, weighted_metrics
        self._outputs_spec = None
        self._loss_tracker = metrics_mod.Mean("loss")
        self._compile_metrics = CompileMetrics(self) if metrics or weighted_metrics else None
        self._output_loss_trackers = []
        self.compiled = True

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(
                f"You must call compile() on model '{self.name}' before {what}(), e.g. "
                "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')."
            )

    # ----------------------------------------------------------------- metrics
    @property
    def metrics(self) -> list:
        """The metrics that fit/evaluate reset each epoch and report: the loss tracker, the
        compiled metrics (one "compile_metrics" entry), each output's loss tracker (several
        outputs), then the Metric objects set as attributes of the model or its layers."""
        found = []
        if self.compiled:
            found.append(self._loss_tracker)
            if self._compile_metrics is not None:
                found.append(self._compile_metrics)
            found.extend(self._output_loss_trackers)
        known = {id(m) for m in found}
        for module in submodules(self):
            if module is not self and isinstance(module, Trainer):
                continue  # a nested model's metrics are its own fit's
            for value in vars(module).values():
                if isinstance(value, metrics_mod.Metric) and id(value) not in known:
                    known.add(id(value))
                    found.append(value)
        return found

    @property
    def metrics_names(self) -> list:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict:
        """The current result of every metric in `self.metrics` (a dict-valued result, such as
        the compiled metrics', adds its entries)."""
        logs = {}
        for metric in self.metrics:
            value = metric.result()
            if isinstance(value, Mapping):
                logs.update(value)
            else:
                logs[metric.name] = value
        return logs

    def _all_metrics(self):
        """Every metric object, the compiled ones one by one (to combine their states)."""
        for metric in self.metrics:
            if isinstance(metric, CompileMetrics):
                yield from metric.metrics
            else:
                yield metric

    def _final_logs(self, last_logs) -> dict:
        """The logs of an epoch or evaluation: every metric's result where the step's logs name
        the same metrics (the default steps), else the last step's own logs (Keras' rule)."""
        metric_logs = python_logs(self.get_metrics_result())
        if last_logs is None:
            return metric_logs
        last = python_logs(last_logs)
        return metric_logs if set(last) == set(metric_logs) else last

    def _output_names(self, n):
        outputs = getattr(self, "_flat_outputs", None) if getattr(self, "_graph", False) else None
        if outputs is not None and len(outputs) == n:
            return [t.node.layer.name for t in outputs]
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]

    def _per_output(self, arg, names, what):
        """A compile argument spread over the outputs: one value for all, a list, or a dict."""
        if isinstance(arg, dict):
            unknown = set(arg) - set(names)
            if unknown:
                raise ValueError(
                    f"compile(): `{what}` names outputs {sorted(unknown)} that model "
                    f"'{self.name}' does not have. Outputs: {names}"
                )
            return [arg.get(n) for n in names]
        if isinstance(arg, (list, tuple)) and len(names) > 1 and not what.endswith("metrics"):
            if len(arg) != len(names):
                raise ValueError(
                    f"compile(): `{what}` has {len(arg)} entries but model '{self.name}' has "
                    f"{len(names)} outputs ({names})."
                )
            return list(arg)
        return [arg] * len(names)

    def _metric_lists(self, arg, names, what):
        """`metrics` or `weighted_metrics` as one list per output."""
        arg = arg or []
        if len(names) > 1 and isinstance(arg, (list, tuple)) and arg and all(
            isinstance(m, (list, tuple)) or m is None for m in arg
        ):
            return [list(m or []) for m in arg]
        lists = self._per_output(arg, names, what)
        return [list(m) if isinstance(m, (list, tuple)) else ([m] if m else []) for m in lists]

    def _resolve_outputs(self, y_true, y_pred):
        """The per-output losses and compiled metrics, from the first batch's outputs (and
        targets, which "accuracy" is resolved from)."""
        flat_pred = self._flat_predictions(y_pred)
        names = self._output_names(len(flat_pred))
        loss_list = self._per_output(self._loss_arg, names, "loss")
        weights = self._per_output(self._loss_weights_arg, names, "loss_weights")
        self._outputs_spec = [
            # weights as floats once: a tensor weight would make `weight == 1` a sync every step
            _OutputSpec(n, None if lo is None else losses_mod.get(lo), 1.0 if w is None else float(w))
            for n, lo, w in zip(names, loss_list, weights)
        ]
        if self._compile_metrics is not None:
            if y_true is None:
                raise ValueError(f"Model '{self.name}' was compiled with metrics, which need targets `y`.")
            flat_true = self._flat_targets(y_true, len(flat_pred))
            for spec, ids, weighted_ids, yt, yp in zip(
                    self._outputs_spec, self._metric_lists(self._metrics_arg, names, "metrics"),
                    self._metric_lists(self._weighted_metrics_arg, names, "weighted_metrics"),
                    flat_true, flat_pred):
                spec.metrics, spec.weighted = output_metrics(ids, weighted_ids, yt, yp)
        multi = len(self._outputs_spec) > 1
        for spec in self._outputs_spec:
            spec.tracker = metrics_mod.Mean(f"{spec.name}_loss") if multi and spec.loss is not None else None
        self._output_loss_trackers = [s.tracker for s in self._outputs_spec if s.tracker is not None]

    @staticmethod
    def _flat_predictions(y_pred) -> list:
        return [y_pred] if isinstance(y_pred, torch.Tensor) else tree.flatten(y_pred)

    def _flat_targets(self, y, n_outputs):
        if isinstance(y, dict):
            names = [s.name for s in self._outputs_spec]
            missing = [k for k in names if k not in y]
            if missing:
                raise ValueError(f"Targets for outputs {missing} are missing; received {sorted(y)}.")
            return [y[k] for k in names]
        flat = [y] if isinstance(y, torch.Tensor) else tree.flatten(y)
        if len(flat) != n_outputs:
            raise ValueError(
                f"Model '{self.name}' has {n_outputs} output(s) but {len(flat)} target array(s) "
                "were given."
            )
        return flat

    # ----------------------------------------------------------------- one step
    def _device(self):
        """The first weight's device (in `modules()` order), else the CPU's."""
        stack = [self]
        while stack:  # depth first, stopping at the first weight: predict asks on every call
            module = stack.pop()
            if module is None:
                continue
            for p in module._parameters.values():
                if p is not None:
                    return p.device
            stack.extend(reversed(module._modules.values()))
        return torch.device("cpu")

    def _place(self, device=None):
        """Move the model to `device`, else to lamina.config's device, unless the user put it on
        an accelerator already (see `config.placement`)."""
        current = self._device()
        target = config.placement(current, device)
        if target != current:
            self.to(target)
            if self.optimizer is not None and self.optimizer.built:
                # torch's load_state_dict moves the optimizer's state to its parameters' device.
                self.optimizer.torch_optimizer.load_state_dict(self.optimizer.torch_optimizer.state_dict())
        steps = self._compiled_steps
        if compiled.wanted(self._jit_compile, target) and (steps is None or steps.device != target):
            self._compiled_steps = compiled.CompiledSteps(self, target)
        return target

    def _autocast(self):
        if not self.dtype_policy.is_mixed:  # the float32 hot path skips the device lookup
            return contextlib.nullcontext()
        return self.dtype_policy.autocast(self._device().type)

    def _to_device(self, structure, device=None):
        device = device or self._device()
        if device.type == "cpu":
            return structure
        return tree.map_structure(
            lambda t: t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t,
            structure)

    # ----------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss of a batch (Keras' `compute_loss`): the compiled loss, the weights'
        regularization penalties and the losses layers added with `add_loss` in the last call.
        Each output's loss tracker is updated here (models with several outputs)."""
        total = None
        if self._loss_arg is not None:
            if y is None:
                raise ValueError(f"Model '{self.name}' was compiled with a `loss`, which needs "
                                 "targets `y`; pass y to fit()/evaluate().")
            if self._outputs_spec is None:
                self._resolve_outputs(y, y_pred)
            total = self._compiled_loss(y, y_pred, sample_weight)
        if self._regularized is None:
            self._regularized = self._find_regularized()
        for layer, name, regularizer in self._regularized:
            penalty = regularizer(getattr(layer, name))
            total = penalty if total is None else total + penalty
        for added in self._added_losses():
            added = added.sum()
            total = added if total is None else total + added
        if total is None:
            raise ValueError(
                f"No loss to compute for model '{self.name}': compile() was given no `loss`, no "
                "layer called add_loss(), and no weight has a regularizer. Pass one, e.g. "
                "compile(loss='mse'), or override train_step()/compute_loss().")
        return total

    def _step_loss(self, x, y, y_pred, sample_weight, training):
        """`compute_loss` as the default steps call it, also where a subclass overrides it with
        the signature from before Keras 3.3, which has no `training` argument."""
        if self._compute_loss_takes_training:
            return self.compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.compute_loss(x, y, y_pred, sample_weight)

    def _compiled_loss(self, y, y_pred, sample_weight):
        flat_pred = self._flat_predictions(y_pred)
        flat_true = self._flat_targets(y, len(flat_pred))
        total = None
        for spec, yt, yp in zip(self._outputs_spec, flat_true, flat_pred):
            if spec.loss is None:
                continue
            value = spec.loss(yt, yp, sample_weight)
            if spec.tracker is not None:
                spec.tracker.update_state(value.detach(), sample_weight=yp.shape[0])
            weighted = value if spec.weight == 1 else spec.weight * value
            total = weighted if total is None else total + weighted
        return total

    def _find_regularized(self) -> list:
        return [(layer, name, reg) for layer in self.modules() if isinstance(layer, Layer)
                for name, reg in layer._regularizers]

    def _added_losses(self) -> list:
        if not any_layer_adds_losses():  # the common case costs no walk of the modules
            return []
        return [t for m in submodules(self) for t in vars(m).get("_added_losses", ())]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with a batch and return the logs (Keras'
        `compute_metrics`): a mapping of every metric's result, read when looked at."""
        self._update_compiled_metrics(y, y_pred, sample_weight)
        return LazyLogs(self.get_metrics_result)

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        if self._compile_metrics is not None and y is not None:
            self._compile_metrics.update_state(y, y_pred, sample_weight)

    def _metrics_in_forward(self) -> bool:
        """Whether `_forward_metrics` updates the compiled metrics: unless a subclass overrides
        `compute_metrics`, which the default steps then call after it."""
        return type(self).compute_metrics is Trainer.compute_metrics

    # ----------------------------------------------------------------- the default steps
    def train_step(self, data):
        """One training step on a batch: forward, loss, gradients, update, metrics. `fit` calls
        it for every batch; override it to customize what fit does (it then runs instead).

        `data` is `x`, `(x, y)` or `(x, y, sample_weight)` (`lamina.utils.unpack_x_y_sample_weight`);
        returns the logs (a mapping of metric names to values).
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        fused = self._dense_step
        if fused is not None and fused.applies(x, y, sample_weight):
            total, y_pred = fused(x, y)
            self._loss_tracker.update_state(total.detach(), sample_weight=x.shape[0])
            return self.compute_metrics(x, y, y_pred, None)
        total, y_pred = self._step_forward(x, y, sample_weight, training=True)
        if not self.optimizer.built:  # a model whose weights its first step created
            self.optimizer.build(self.parameters())
        self.optimizer.zero_grad()
        parallel = self._data_parallel
        objective = total if parallel is None else total * parallel.share
        if self._grad_scaler is not None:
            objective = self._grad_scaler.scale(objective)
        objective.backward()
        self.optimizer.step(self._grad_scaler)
        return self._step_logs(x, y, y_pred, sample_weight)

    def test_step(self, data):
        """One evaluation step on a batch (no gradients): loss and metrics. `evaluate` and fit's
        validation call it; override it to customize them."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        _, y_pred = self._step_forward(x, y, sample_weight, training=False)
        return self._step_logs(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        """The model's outputs for a batch. `predict` calls it; override it to customize."""
        x, _, _ = unpack_x_y_sample_weight(data)
        steps = self._compiled_steps
        return self(x) if steps is None else steps.predict(x)

    def _step_forward(self, x, y, sample_weight, training):
        steps = self._compiled_steps
        if steps is None:
            return self._forward_metrics(x, y, sample_weight, training)
        return steps.forward_metrics(x, y, sample_weight, training)

    def _forward_metrics(self, x, y, sample_weight, training):
        """The forward pass, the loss, and the updates of the loss tracker and (see
        `_metrics_in_forward`) the compiled metrics: the part of the default steps that
        `compile(jit_compile=True)` runs through torch.compile. Returns the loss and outputs."""
        parallel = self._data_parallel if training else None
        with self._autocast():
            y_pred = self(x) if parallel is None else parallel.wrapper(x)
            total = self._step_loss(x, y, y_pred, sample_weight, training=training)
        self._loss_tracker.update_state(total.detach(), sample_weight=_batch_size(x))
        if self._metrics_in_forward():
            self._update_compiled_metrics(y, y_pred, sample_weight)
        return total, y_pred

    def _step_logs(self, x, y, y_pred, sample_weight):
        if self._metrics_in_forward():
            return LazyLogs(self.get_metrics_result)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    # ----------------------------------------------------------------- preparing
    def _prepare(self, data, y_full=None, training=True, device=None):
        """Place and build the model, the optimizer and the loss/metric structures; check the
        targets."""
        self._place(device)
        x0, y0, _ = data.peek()
        x0, y0 = self._to_device(x0), self._to_device(y0)
        # One inference pass on the first batch (the real batch: stateful RNNs and shape errors
        # need it) builds the model and shows its outputs (shapes, softmax/sigmoid) to the target
        # checks; kept, so train_on_batch loops do not pay a second forward per step.
        probe = self._output_probe
        if probe is None or tree.flatten(probe)[0].device != self._device():
            try:
                with torch.no_grad(), state_updates_disabled(), self._modes(False):
                    probe = self._output_probe = self(x0)
            except NotImplementedError:
                # A model without a forward pass of its own (a GAN whose train_step calls its
                # generator and discriminator): nothing to probe, its step does the work.
                probe = None
        # The weights with a regularizer, found once rather than by a module walk every step.
        self._regularized = self._find_regularized()
        if training and not self.optimizer.built and any(p.requires_grad for p in self.parameters()):
            self.optimizer.build(self.parameters())
        if probe is None or y0 is None or (self._loss_arg is None and self._compile_metrics is None):
            return
        if self._outputs_spec is None:
            self._resolve_outputs(y0, probe)
        targets = y_full if y_full is not None else y0
        flat_pred = self._flat_predictions(probe)
        for spec, yt, yp in zip(self._outputs_spec, self._flat_targets(targets, len(flat_pred)),
                                flat_pred):
            if spec.loss is not None:
                losses_mod.check(yt, yp, spec.loss, output_name=spec.name)

    def _modes(self, mode):
        """A context that runs its block with every module in training (`mode=True`) or inference
        (`False`) mode, or with the modes a callable sets; then puts every module back as it was."""
        return _Modes(self, mode)

    def _class_weighted(self, y, sample_weight, class_weight):
        if class_weight is None:
            return sample_weight
        if isinstance(y, (list, dict)):
            raise ValueError("`class_weight` is only supported for models with a single output.")
        labels = y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(y.shape[0])
        n_classes = int(labels.max()) + 1
        table = torch.ones(max(n_classes, max(class_weight) + 1))
        for cls, w in checked_class_weight(class_weight).items():
            table[int(cls)] = float(w)
        weights = table[labels.long()]
        return weights if sample_weight is None else weights * sample_weight

    # ----------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, device=None):
        """Train the model for `epochs` epochs; returns a History (`.history` dict of lists).

        `x`/`y`: numpy arrays, torch tensors, pandas objects, lists or dicts of these for several
        inputs/outputs, or a torch Dataset/DataLoader yielding (x, y) or (x, y, sample_weight).
        `device`: where to train ("cpu", "cuda", "cuda:1", "mps"); by default lamina.config's
        device (an accelerator when there is one). Under torchrun (or an initialised
        torch.distributed process group) training is data-parallel: see `lamina.distributed`.
        """
        self._require_compiled("fit")
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative int. Received: epochs={epochs!r}")
        data = adapt(x, y, sample_weight, batch_size, shuffle)
        val = None
        if validation_split:
            if not hasattr(data, "split"):
                raise ValueError(
                    "`validation_split` needs array inputs; with a Dataset or DataLoader pass "
                    "`validation_data` instead."
                )
            data, val = data.split(validation_split)
            val.shuffle = False
        elif validation_data is not None:
            val = self._adapt_validation(validation_data, validation_batch_size or batch_size)
        if class_weight is not None and getattr(data, "y", None) is not None:
            data.sample_weight = self._class_weighted(data.y, data.sample_weight, class_weight)
        self._prepare(data, getattr(data, "y", None), device=device)
        self._grad_scaler = self._grad_scaler or self.dtype_policy.grad_scaler(self._device().type)
        parallel = self._data_parallel = distributed.setup(self)
        # The hand-derived step, where the model allows it (never under data parallelism).
        self._dense_step = (DenseStackStep.for_model(self)
                            if self._jit_compile == "auto" and self._outputs_spec else None)
        try:
            with threads.loop_threads(self, "fit", self._device()):
                return self._fit_epochs(data, val, parallel, epochs, verbose, callbacks, initial_epoch,
                                        steps_per_epoch, validation_steps, validation_freq)
        finally:
            self._data_parallel = self._dense_step = None

    def _fit_epochs(self, data, val, parallel, epochs, verbose, callbacks, initial_epoch,
                    steps_per_epoch, validation_steps, validation_freq):
        if parallel is not None:
            data = parallel.shard(data, training=True)
            val = None if val is None else parallel.shard(val, training=False)
            callbacks = distributed.callbacks_for_this_process(callbacks or [])
        verbose = _resolve_verbose(verbose)
        steps = steps_per_epoch or len(data) or None
        history = History()
        extra = []
        if verbose and distributed.is_main_process():
            from lamina.models.progress import ProgressBar

            extra.append(ProgressBar(verbose))
        cbs = CallbackList([*extra, *(callbacks or []), history], self,
                           {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        self.history = history
        cbs.on_train_begin({})
        # Where an interrupted run stopped (set by BackupAndRestore): its epoch, and the steps
        # already trained in it, which are skipped.
        initial_epoch, skip_steps = self.__dict__.pop("_resume_at", None) or (initial_epoch, 0)
        device = self._device()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch, {})
            self.train()
            step_logs = None
            for step, batch in enumerate(prefetched(data, device)):
                if steps_per_epoch and step >= steps_per_epoch:
                    break
                if step < skip_steps:
                    continue
                if cbs.wants("on_train_batch_begin"):
                    cbs.on_train_batch_begin(step, {})
                with threads.timed_step():
                    step_logs = self.train_step(self._step_data(batch, device))
                if cbs.wants("on_train_batch_end"):
                    cbs.on_train_batch_end(step, LazyLogs(step_logs))
                if self.stop_training and parallel is None:  # processes stop together, below
                    break
            skip_steps = 0
            if parallel is not None:
                parallel.average_buffers(self)
                parallel.reduce_metrics(self._all_metrics())
            logs = self._final_logs(step_logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._run_evaluation(val, validation_steps, cbs)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, logs)
            if parallel is not None:
                self.stop_training = parallel.any(self.stop_training)
            if self.stop_training:
                break
        self.eval()
        cbs.on_train_end(logs)
        return history

    def _adapt_validation(self, validation_data, batch_size):
        if isinstance(validation_data, (tuple, list)):
            if len(validation_data) not in (2, 3):
                raise ValueError(
                    "`validation_data` must be (x_val, y_val) or (x_val, y_val, sample_weight). "
                    f"Received a sequence of length {len(validation_data)}."
                )
            return adapt(*validation_data, batch_size=batch_size)
        return adapt(validation_data, batch_size=batch_size)

    def _step_data(self, batch, device=None):
        """An adapter's (x, y, sample_weight) batch on the model's device, packed as the step
        methods receive it."""
        x, y, sample_weight = batch
        return pack_x_y_sample_weight(*(self._to_device(t, device) for t in (x, y, sample_weight)))

    def _run_evaluation(self, data, steps=None, callbacks=None) -> dict:
        """Run `test_step` on the batches with the `on_test_*` hooks; the logs of the whole."""
        cbs = callbacks or CallbackList([], self, {})
        self.reset_metrics()
        cbs.on_test_begin({})
        step_logs = None
        with (torch.no_grad(), state_updates_disabled(), self._modes(False),
              threads.loop_threads(self, "evaluate", self._device())):
            for step, batch in enumerate(prefetched(data, self._device())):
                if steps and step >= steps:
                    break
                if cbs.wants("on_test_batch_begin"):
                    cbs.on_test_batch_begin(step, {})
                with threads.timed_step():
                    step_logs = self.test_step(self._step_data(batch))
                if cbs.wants("on_test_batch_end"):
                    cbs.on_test_batch_end(step, LazyLogs(step_logs))
        if getattr(data, "partial", False):  # each process saw its part of the data
            self._data_parallel.reduce_metrics(self._all_metrics())
        logs = self._final_logs(step_logs)
        cbs.on_test_end(logs)
        return logs

    # ----------------------------------------------------------------- evaluate / predict
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics on the data, in inference mode. A float, a list, or a dict."""
        self._require_compiled("evaluate")
        data = adapt(x, y, sample_weight, batch_size)
        self._prepare(data, getattr(data, "y", None), training=False)
        verbose = _resolve_verbose(verbose)
        cbs = CallbackList(callbacks or [], self, {"steps": steps or len(data) or None, "verbose": verbose})
        logs = self._run_evaluation(data, steps, cbs)
        if verbose and distributed.is_main_process():
            from lamina.models.progress import format_logs

            print(f"{len(data)}/{len(data)} - {format_logs(logs)}")
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _predict_batches(self, x, batch_size, steps=None):
        data = adapt(x, batch_size=batch_size)
        device = self._place()
        for step, (xb, _, _) in enumerate(prefetched(data, device)):
            if steps and step >= steps:
                break
            yield self._to_device(xb, device)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None,
                training=False):
        """Outputs for `x` as numpy arrays.

        training=False (default): inference mode — dropout off, BatchNorm on moving statistics;
        stateful RNNs carry their states on from batch to batch, as in Keras.
        training=True: every layer in training mode (dropout on, batch statistics), but nothing
        is updated: weights, moving statistics and RNN states stay as they were.
        """
        states = state_updates_disabled() if training else contextlib.nullcontext()
        one_batch = _one_batch(x, batch_size) if steps is None and not callbacks else None
        with (torch.inference_mode(), states, self._modes(bool(training)), self._autocast(),
              threads.loop_threads(self, "predict", self._device(), throttle=one_batch is None)):
            if one_batch is not None:  # the lean path of single-sample serving: no adapter, no concat
                with threads.timed_step():
                    return self._predict_one(one_batch)
            cbs = CallbackList(callbacks or [], self, {"steps": steps, "verbose": _resolve_verbose(verbose)})
            cbs.on_predict_begin({})
            outs = []
            for step, xb in enumerate(self._predict_batches(x, batch_size, steps)):
                if cbs.wants("on_predict_batch_begin"):
                    cbs.on_predict_batch_begin(step, {})
                with threads.timed_step():
                    outs.append(self.predict_step(pack_x_y_sample_weight(xb)))
                if cbs.wants("on_predict_batch_end"):
                    cbs.on_predict_batch_end(step, {"outputs": outs[-1]})
            cbs.on_predict_end({})
        return _concat_outputs(outs)

    def predict_mc(self, x, samples=30, batch_size=None, return_samples=False) -> MCResult:
        """Monte-Carlo dropout: `samples` stochastic passes with only the dropout layers on.

        Normalization and every other layer stay in inference mode, and no state changes.
        Returns an MCResult with `mean` and `std` over the passes, `samples` (samples, n, ...)
        when `return_samples=True`, and for a softmax/sigmoid output the predictive entropy of
        the mean (in nats).
        """
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"predict_mc: `samples` must be a positive int. Received: {samples!r}")
        dropout_layers = [m for m in self.modules() if _is_dropout(m)]
        if not dropout_layers:
            raise ValueError(
                f"predict_mc: model '{self.name}' has no dropout-type layer (Dropout, "
                "SpatialDropout*, GaussianDropout, GaussianNoise, AlphaDropout, or an RNN with "
                "dropout), so every pass would be identical. Add a Dropout layer, or use predict()."
            )

        def mode():
            self.eval()
            for m in dropout_layers:
                m.train()

        draws, squash = [], None
        with torch.inference_mode(), state_updates_disabled(), self._modes(mode), self._autocast():
            for xb in self._predict_batches(x, batch_size, None):
                batch = []
                for _ in range(samples):
                    out = self(xb)
                    if isinstance(out, torch.Tensor):
                        squash = getattr(out, "_lamina_squash", None)
                    batch.append(tree.map_structure(_host, out))
                draws.append(batch)
        if not all(isinstance(b[0], torch.Tensor) for b in draws):
            raise ValueError("predict_mc supports models with a single output tensor.")
        stacked = torch.cat([torch.stack(b) for b in draws], dim=1)  # (samples, n, ...)
        mean = stacked.mean(0)
        std = stacked.std(0, correction=0)
        entropy = None
        if squash == "softmax":
            entropy = -(mean * torch.log(mean.clamp_min(1e-12))).sum(-1)
        elif squash == "sigmoid":
            p = mean.clamp(1e-12, 1 - 1e-12)
            entropy = -(p * torch.log(p) + (1 - p) * torch.log1p(-p))
        return MCResult(mean.numpy(), std.numpy(),
                        stacked.numpy() if return_samples else None,
                        None if entropy is None else entropy.numpy())

    # ----------------------------------------------------------------- single batches
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._require_compiled("train_on_batch")
        data = adapt(x, y, sample_weight, batch_size=None)
        data.batch_size = data.n
        if class_weight is not None:
            data.sample_weight = self._class_weighted(data.y, data.sample_weight, class_weight)
        self._prepare(data, data.y)
        self.reset_metrics()
        with self._modes(True):
            logs = self.train_step(self._step_data(data.peek()))
        return self._batch_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        data = adapt(x, y, sample_weight, batch_size=None)
        data.batch_size = data.n
        self._prepare(data, data.y, training=False)
        return self._batch_result(self._run_evaluation(data), return_dict)

    def predict_on_batch(self, x):
        # As predict(): inference mode, and stateful RNNs carry their states on (Keras).
        with torch.inference_mode(), self._modes(False), self._autocast():
            return self._predict_one(checked_tensors(x, "x"))

    def _predict_one(self, x):
        """`predict_step`'s output for the batch `x` (in the caller's inference context) as numpy."""
        device = self._place()
        return _output_copy(self.predict_step(pack_x_y_sample_weight(self._to_device(x, device))), x)

    def _batch_result(self, logs, return_dict):
        logs = self._final_logs(logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values


def _takes_training(function) -> bool:
    parameters = inspect.signature(function).parameters
    return "training" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _batch_size(x) -> int:
    """The number of samples in a batch of inputs (the first tensor's first axis)."""
    return next(t for t in tree.flatten(x) if t is not None).shape[0]


def submodules(root: nn.Module) -> list:
    """`root.modules()` as a list, in its order (depth first, parents before children, each
    module once), without `named_modules`' name strings, which cost more than the rest of a
    single-sample predict's bookkeeping."""
    found, seen, stack = [], set(), [root]
    while stack:
        module = stack.pop()
        if module is None or id(module) in seen:
            continue
        seen.add(id(module))
        found.append(module)
        stack.extend(reversed(module._modules.values()))
    return found


_MODULE_SETATTR = nn.Module.__setattr__


def _set_training(module: nn.Module, mode: bool) -> None:
    # nn.Module.__setattr__ looks the name up among parameters, buffers and submodules first
    # (~1 us); `training` is none of those, so a class that keeps torch's __setattr__ gets the
    # plain attribute write it would end with.
    if type(module).__setattr__ is _MODULE_SETATTR:
        object.__setattr__(module, "training", mode)
    else:
        module.training = mode


class _Modes:
    """Model._modes' context: the modules switched on entry are switched back on exit."""

    __slots__ = ("model", "mode", "saved")

    def __init__(self, model, mode):
        self.model, self.mode = model, mode

    def __enter__(self):
        mode = self.mode
        if callable(mode):
            self.saved = [(m, m.training) for m in submodules(self.model)]
            mode()
            return
        # Only the modules switched here need switching back; the walk is submodules()' in any
        # order, switching as it goes: a single-sample predict pays for every step of it, and
        # submodules() then a filter (or one generator for this and _device) measured 2-3 us
        # slower per MLP predict (57 -> 60 us).
        saved, seen, stack = [], set(), [self.model]
        while stack:
            module = stack.pop()
            if module is None or id(module) in seen:
                continue
            seen.add(id(module))
            if module.training != mode:
                saved.append((module, module.training))
                _set_training(module, mode)
            stack.extend(module._modules.values())
        self.saved = saved

    def __exit__(self, *exc):
        for m, was in self.saved:
            if m.training != was:
                _set_training(m, was)


def _host(t: torch.Tensor) -> torch.Tensor:
    """A result on the CPU, bfloat16 (mixed precision; numpy has no such type) as float32."""
    t = t.detach().cpu()
    return t.float() if t.dtype == torch.bfloat16 else t


def _one_batch(x, batch_size):
    """`x` as one tensor when it is a single array that fits one batch, else None."""
    if not isinstance(x, (np.ndarray, torch.Tensor)) or x.ndim == 0:
        return None
    if len(x) == 0 or len(x) > checked_batch_size(batch_size):
        return None
    return checked_tensors(x, "x")


def _output_copy(out, x):
    """A model's output on the host as numpy, never a view of the input `x`: one tensor without
    a copy unless it shares the input's memory, anything else through `_concat_outputs`."""
    if not isinstance(out, torch.Tensor) or not isinstance(x, torch.Tensor):
        return _concat_outputs([out])
    host = _host(out)
    if host.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        host = host.clone()
    return host.numpy()


def _concat_outputs(outs):
    if not outs:
        raise ValueError("predict() received no data (0 batches).")
    first = outs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat([_host(o) for o in outs]).numpy()  # a copy: never a view of the input
    flat = [tree.flatten(o) for o in outs]
    joined = [torch.cat([_host(f[i]) for f in flat]).numpy() for i in range(len(flat[0]))]
    if isinstance(first, dict):
        return dict(zip(first.keys(), joined))
    return joined

