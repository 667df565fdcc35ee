"""Loss diagnostics: targets, output and loss that cannot be right together are explained before the
first training step, and `loss="auto"` picks the loss the targets and the output call for.

The rules are the note's: one output unit takes binary cross-entropy with a sigmoid; k units take
categorical cross-entropy (one-hot rows) or sparse categorical cross-entropy (integer labels) with a
softmax; multi-label 0/1 rows take a sigmoid per unit with binary cross-entropy. Keras trains the
wrong combinations silently and torch answers with tensor-dimension errors; here each one raises a
ValueError that says what is wrong and which loss and output activation to use instead.

Targets that Keras trains on and whose loss is still well defined, only unusual (categorical
cross-entropy on multi-hot rows, on rows that do not sum to 1, on non-negative weights above 1),
are not refused: a warning says what is unusual and the likely fix, and training goes on.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import torch

from lamina.losses import regression, segmentation
from lamina.losses.base import Loss
from lamina.losses.margin import CategoricalHinge, Hinge, SquaredHinge
from lamina.losses.probabilistic import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from lamina.losses.regression import MeanSquaredError
from lamina.utils import tree

BINARY = (BinaryCrossentropy, BinaryFocalCrossentropy)
CATEGORICAL = (CategoricalCrossentropy, CategoricalFocalCrossentropy)
SPARSE = (SparseCategoricalCrossentropy,)
# Losses that compare targets and outputs value by value, so their shapes must match.
VALUEWISE = (
    *(getattr(regression, n) for n in regression.__all__ if n[0].isupper()),
    *(getattr(segmentation, n) for n in segmentation.__all__ if n[0].isupper()),
    Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
)
_SUMS_TO_ONE_TOLERANCE = 1e-3  # float32 soft labels do not sum to 1 exactly
_SAMPLE = 32  # how many samples of `x` a model is run on by check()
_UNKNOWN_AXIS_SIZE = 16  # the size given to unknown (None) input axes when x is not given


def target_tensor(y_true, output_name="output") -> torch.Tensor:
    """The targets as a numeric CPU tensor (in their own dtype, so large targets are not copied
    into a wider one); strings, non-numeric objects, NaN and infinities are refused."""
    if isinstance(y_true, torch.Tensor):
        t = y_true.detach().cpu()
    else:
        arr = np.asarray(y_true.to_numpy() if hasattr(y_true, "to_numpy") else y_true)
        if arr.dtype.kind in "USO":
            what = "strings" if arr.dtype.kind in "US" else "non-numeric objects"
            raise ValueError(
                f"The targets for output '{output_name}' hold {what} ({arr.dtype}). Encode class "
                "names as integers 0..k-1 first, e.g. np.unique(y, return_inverse=True)[1]."
            )
        t = torch.from_numpy(np.array(arr))
    if t.is_complex():
        raise ValueError(f"The targets for output '{output_name}' are complex numbers; losses need "
                         "real targets.")
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        first = int((~finite).reshape(t.shape[0], -1).any(1).nonzero()[0]) if t.ndim else 0
        kind = "NaN" if bool(torch.isnan(t).any()) else "infinite values"
        raise ValueError(
            f"The targets for output '{output_name}' contain {kind} (first in sample {first}). Drop "
            "or impute those samples before training: one NaN target makes the loss, and then "
            "every weight, NaN."
        )
    return t


def _units(n):
    return f"{n} unit{'s' if n != 1 else ''}"


def _number(v):
    return f"{int(v)}" if float(v).is_integer() else f"{v:.4g}"


class _Case:
    """One output's targets, a sample of its predictions and its loss, with the facts the rules ask
    about: the targets' layout against the output (rows shaped like it, one label per position, or
    neither), their value range and kind, and the output's activation and values."""

    def __init__(self, targets, y_pred, loss, output_name):
        self.loss, self.output = loss, output_name
        self.squash = getattr(y_pred, "_lamina_squash", None)
        pred = torch.as_tensor(y_pred).detach().cpu().double()
        self.target_shape = (None, *targets.shape[1:])
        self.output_shape = (None, *pred.shape[1:])
        pred = pred.reshape(-1, 1) if pred.ndim < 2 else pred
        if isinstance(loss, CATEGORICAL + SPARSE) and loss.options["axis"] not in (-1, pred.ndim - 1):
            if targets.ndim == pred.ndim:
                targets = targets.movedim(loss.options["axis"], -1)
            pred = pred.movedim(loss.options["axis"], -1)
        self.pred, self.units = pred, pred.shape[-1]
        self.layout, self.targets = self._layout(targets)

    def _layout(self, t):
        per_sample, per_output = tuple(t.shape[1:]), tuple(self.pred.shape[1:])
        if t.ndim >= 1 and per_sample == per_output:
            return "rows", t
        if t.ndim >= 1 and per_sample == per_output[:-1]:
            return ("rows", t.unsqueeze(-1)) if self.units == 1 else ("labels", t)
        if t.ndim >= 1 and per_sample == (*per_output[:-1], 1):
            return "labels", t.squeeze(-1)
        return "mismatch", t

    # ------------------------------------------------------------------ facts about the targets
    @cached_property
    def lo(self):
        return float(self.targets.min()) if self.targets.numel() else 0.0

    @cached_property
    def hi(self):
        return float(self.targets.max()) if self.targets.numel() else 0.0

    @cached_property
    def integral(self):
        t = self.targets
        return not t.is_floating_point() or bool((t == t.round()).all())

    @cached_property
    def binary(self):
        return bool(((self.targets == 0) | (self.targets == 1)).all())

    @property
    def in_unit(self):
        return self.lo >= 0.0 and self.hi <= 1.0

    @cached_property
    def row_sums(self):
        return self.targets.sum(-1, dtype=torch.float64).reshape(-1)

    @property
    def sums_to_one(self):
        return bool(((self.row_sums - 1.0).abs() <= _SUMS_TO_ONE_TOLERANCE).all())

    @property
    def range_text(self):
        return f"{_number(self.lo)}..{_number(self.hi)}"

    # ------------------------------------------------------------------ facts about the output
    @property
    def out_lo(self):
        return float(self.pred.min())

    @property
    def out_hi(self):
        return float(self.pred.max())

    @property
    def outputs_outside_unit(self):
        return self.out_lo < 0.0 or self.out_hi > 1.0

    @property
    def outputs_are_distributions(self):
        return not self.outputs_outside_unit and bool(
            ((self.pred.sum(-1) - 1.0).abs() <= _SUMS_TO_ONE_TOLERANCE).all())

    # ------------------------------------------------------------------ reporting
    def fail(self, problem, fix):
        activation = self.squash or "no softmax/sigmoid"
        raise ValueError(
            f"{self.loss.name} does not fit output '{self.output}' ({_units(self.units)}, "
            f"{activation}): {problem} {fix}"
        )

    def caution(self, problem, fix):
        """A warning for targets Keras trains on whose loss is defined but unusual."""
        activation = self.squash or "no softmax/sigmoid"
        warnings.warn(
            f"{self.loss.name} on output '{self.output}' ({_units(self.units)}, {activation}): "
            f"{problem} The loss is defined (as in Keras), so training goes on; if this is not "
            f"intended: {fix}", UserWarning, stacklevel=2)

    def shape_problem(self):
        return (f"the targets have shape {self.target_shape} but the output has shape "
                f"{self.output_shape}.")


# ---------------------------------------------------------------------------- the rules
def _check_activation(case):
    if case.squash == "softmax" and case.units == 1:
        case.fail(
            "a softmax over a single unit always outputs 1.0, so the model cannot learn anything.",
            "For a binary task use activation='sigmoid' on that unit with "
            "loss='binary_crossentropy'; for k classes give the last layer k units.",
        )
    if case.loss.options.get("from_logits") and case.squash is not None:
        case.fail(
            f"from_logits=True says the outputs are logits, but the last layer already applies "
            f"{case.squash}, so the loss would squash them twice.",
            "Drop from_logits=True: lamina computes the loss from that layer's logits anyway, in "
            "the numerically stable form. (Or make the last layer linear and keep from_logits=True.)",
        )


def _expect_probabilities(case, activation):
    """A probability loss on an output that is neither squashed nor declared as logits."""
    if case.squash is None and not case.loss.options.get("from_logits") and case.outputs_outside_unit:
        case.fail(
            f"the output values range over {case.out_lo:.3g}..{case.out_hi:.3g}, so they are not "
            "probabilities, and the loss would clip them to [1e-7, 1 - 1e-7].",
            f"If the last layer is linear, pass from_logits=True to the loss, or give it "
            f"activation='{activation}'.",
        )


def _check_binary(case):
    k = case.units
    if case.layout == "labels" and case.integral:
        classes = max(k, int(case.hi) + 1)
        case.fail(
            f"the targets are integer class labels ({case.range_text}), one per sample: a "
            f"multi-class task with one label each, which {k} independent sigmoid outputs do not "
            "model (and the accuracy Keras would report is meaningless).",
            f"Use loss='sparse_categorical_crossentropy' with activation='softmax' on the last "
            f"layer ({_units(classes)}).",
        )
    if case.layout != "rows":
        case.fail(case.shape_problem(), "Binary cross-entropy needs targets shaped like the output; "
                  "for w labels per sample give the last layer w units with activation='sigmoid'.")
    if not case.in_unit:
        if k == 1 and case.integral and case.lo >= 0:
            classes = int(case.hi) + 1
            case.fail(
                f"the targets are class labels 0..{classes - 1}, {classes} classes, but one output "
                "unit can only separate two.",
                f"Use Dense({classes}, activation='softmax') with "
                "loss='sparse_categorical_crossentropy'.",
            )
        if bool(((case.targets == -1) | (case.targets == 1)).all()):
            case.fail("the labels are -1/1, but binary cross-entropy needs 0/1 targets.",
                      "Map them with (y + 1) / 2, or use loss='hinge' with a linear output.")
        case.fail(
            f"binary cross-entropy needs targets in [0, 1] (0/1 labels or probabilities), but they "
            f"range over {case.range_text}.",
            "Rescale the targets to [0, 1], or use a regression loss such as 'mse' for real values.",
        )
    if case.squash == "softmax":
        if case.sums_to_one:
            case.fail(
                "each target row holds one class (one-hot): a multi-class task, but binary "
                "cross-entropy scores every unit as a separate yes/no question.",
                "Use loss='categorical_crossentropy' with the softmax (or "
                "'sparse_categorical_crossentropy' with integer labels).",
            )
        case.fail(
            "the targets are multi-label (rows with several 1s, or none), but a softmax makes the "
            "units compete: they sum to 1, so two labels can never both be predicted.",
            "Use activation='sigmoid' on the last layer and keep loss='binary_crossentropy'.",
        )
    _expect_probabilities(case, "sigmoid")


def _check_categorical(case):
    k = case.units
    if k == 1:
        case.fail(
            "a categorical cross-entropy over one unit is always 0: a single class always has "
            "probability 1.",
            "For a binary task use loss='binary_crossentropy' with activation='sigmoid' on the unit.",
        )
    if case.layout == "labels" and case.integral:
        case.fail(
            f"the targets are integer class labels ({case.range_text}), one per sample, but it "
            f"expects one-hot rows of width {k}.",
            f"Use loss='sparse_categorical_crossentropy', or one-hot encode the labels: "
            f"lamina.utils.to_categorical(y, {k}).",
        )
    if case.layout != "rows":
        width = case.target_shape[-1]
        if len(case.target_shape) == len(case.output_shape) and width != k:
            case.fail(
                f"the target rows have width {width}, but the output has {k} units; a one-hot "
                "width must equal the number of output units.",
                f"Give the last layer {width} units (one per class), or encode the labels with "
                f"lamina.utils.to_categorical(y, num_classes={k}).",
            )
        case.fail(case.shape_problem(), "Targets must be one-hot rows shaped like the output.")
    if case.lo < 0:  # a negative target weight makes the loss unbounded below
        case.fail(
            f"the targets must be one-hot rows or class probabilities in [0, 1], but they range over "
            f"{case.range_text}.",
            "Encode integer labels with lamina.utils.to_categorical(y), or use "
            "loss='sparse_categorical_crossentropy' on the labels.",
        )
    if not case.in_unit:
        case.caution(
            f"the targets range over {case.range_text}, not one-hot rows or class probabilities in "
            "[0, 1]; each row weighs the log-probabilities by its values.",
            "encode integer labels with lamina.utils.to_categorical(y), or use "
            "loss='sparse_categorical_crossentropy' on the labels.",
        )
    elif not case.sums_to_one:
        if case.binary:
            case.caution(
                "some target rows have several 1s (or none): multi-label targets, while categorical "
                "cross-entropy assumes exactly one class per sample.",
                "use activation='sigmoid' on the last layer with loss='binary_crossentropy'.",
            )
        else:
            row = int(((case.row_sums - 1.0).abs() > _SUMS_TO_ONE_TOLERANCE).nonzero()[0])
            case.caution(
                f"target rows are not distributions: row {row} sums to "
                f"{float(case.row_sums[row]):.4g}, not 1.",
                "normalize the rows (y / y.sum(-1, keepdims=True)); for independent labels use "
                "activation='sigmoid' with loss='binary_crossentropy'.",
            )
    if case.squash == "sigmoid":
        case.fail(
            "the last layer applies sigmoid, whose units do not sum to 1, but categorical "
            "cross-entropy needs a distribution over the classes.",
            "Use activation='softmax' on the last layer.",
        )
    _expect_probabilities(case, "softmax")


def _check_sparse(case):
    k = case.units
    if k == 1:
        case.fail(
            "it needs one output unit per class, but the output has one unit (a single class "
            "always has probability 1).",
            "For two classes use loss='binary_crossentropy' with activation='sigmoid' on the unit; "
            "for m classes give the last layer m units with activation='softmax'.",
        )
    if case.layout == "rows" and case.in_unit and case.sums_to_one:
        case.fail(
            f"the targets are one-hot rows of width {k}, but it expects one integer label per "
            "sample.",
            "Use loss='categorical_crossentropy', or turn the rows into labels with y.argmax(-1).",
        )
    if case.layout != "labels":
        case.fail(case.shape_problem(), "It expects one integer label per sample: shape (n,) or "
                  "(n, 1), (n, steps) for sequence outputs.")
    if not case.integral:
        case.fail(
            f"it expects integer class labels 0..{k - 1}, but the targets hold non-integer values.",
            "For one-hot or soft targets use loss='categorical_crossentropy'.",
        )
    ignore = case.loss.options["ignore_class"]
    labels = case.targets if ignore is None else case.targets[case.targets != ignore]
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:
            case.fail(
                f"labels must be in 0..{k - 1}, but the targets hold the negative label {lo}.",
                f"If {lo} marks unlabeled positions, pass ignore_class={lo} to the loss; otherwise "
                f"re-encode the labels as 0..{k - 1}.",
            )
        if hi >= k:
            case.fail(
                f"labels must be in 0..{k - 1} for an output with {k} units, but the targets range "
                f"over {lo}..{hi}.",
                f"Give the last layer {hi + 1} units (one per class), or re-encode the labels as "
                f"0..{k - 1}.",
            )
    if case.squash == "sigmoid":
        case.fail(
            "the last layer applies sigmoid, whose units do not sum to 1, but one label per sample "
            "needs a distribution over the classes.",
            "Use activation='softmax' on the last layer.",
        )
    _expect_probabilities(case, "softmax")


def _check_valuewise(case):
    """Losses that compare targets and outputs value by value (regression, hinge, KL, Poisson, …)."""
    if case.layout == "labels" and case.integral:
        case.fail(
            f"the targets are integer class labels ({case.range_text}), one per sample, but "
            f"{case.loss.name} compares targets and outputs value by value, so every label would be "
            f"compared with all {case.units} units.",
            "For classification use loss='sparse_categorical_crossentropy' with "
            "activation='softmax'; for regression give the last layer one unit per target column.",
        )
    if case.layout != "rows":
        case.fail(case.shape_problem(), f"{case.loss.name} compares targets and outputs value by "
                  "value: give the last layer as many units as the targets have columns.")
    loss = case.loss
    if isinstance(loss, Poisson):
        if case.lo < 0:
            case.fail(f"the Poisson loss models counts, but the targets go down to {_number(case.lo)}.",
                      "Use a regression loss such as 'mse' for signed targets.")
        if case.out_lo < 0:
            case.fail("the output has negative values, and the log of a negative rate is NaN.",
                      "Use activation='softplus' or 'exponential' on the last layer.")
    if isinstance(loss, KLDivergence):
        if not case.in_unit:
            case.fail(f"KL divergence compares probability distributions, but the targets range over "
                      f"{case.range_text}.", "Give targets that are distributions (rows in [0, 1] "
                      "summing to 1).")
        if case.squash is None and case.outputs_outside_unit:
            case.fail("the output values are not probabilities.",
                      "Use activation='softmax' on the last layer.")
    if isinstance(loss, (Hinge, SquaredHinge)) and not (
            case.binary or bool(((case.targets == -1) | (case.targets == 1)).all())):
        case.fail(
            f"hinge losses expect labels -1/1 (or 0/1), but the targets range over {case.range_text}.",
            "For more than two classes use loss='categorical_hinge' with one-hot targets, or "
            "loss='sparse_categorical_crossentropy' with a softmax.",
        )
    if isinstance(loss, CategoricalHinge) and not (case.binary and case.sums_to_one):
        case.fail("categorical hinge expects one-hot target rows.",
                  "Encode the labels with lamina.utils.to_categorical(y).")


def _check_case(case):
    _check_activation(case)
    loss = case.loss
    if isinstance(loss, BINARY):
        _check_binary(case)
    elif isinstance(loss, CATEGORICAL):
        _check_categorical(case)
    elif isinstance(loss, SPARSE):
        _check_sparse(case)
    elif isinstance(loss, VALUEWISE):
        _check_valuewise(case)


# ---------------------------------------------------------------------------- loss="auto"
def _auto_choice(case):
    """(loss class, options, reason) by the note's rules, or a ValueError when no rule fits."""
    k, logits = case.units, case.squash is None
    if case.layout == "rows" and k == 1:
        if case.in_unit:
            kind = "0/1 labels" if case.binary else "targets in [0, 1]"
            return (BinaryCrossentropy, {"from_logits": logits and case.outputs_outside_unit},
                    f"{kind} for one output unit")
        return MeanSquaredError, {}, "real-valued targets for one output unit"
    if case.layout == "labels" and case.integral:
        return (SparseCategoricalCrossentropy,
                {"from_logits": logits and not case.outputs_are_distributions},
                f"integer class labels {case.range_text} for {_units(k)}")
    if case.layout == "rows":
        if case.in_unit and case.sums_to_one and case.squash != "sigmoid":
            return (CategoricalCrossentropy,
                    {"from_logits": logits and not case.outputs_are_distributions},
                    f"rows summing to 1 (one class per sample) for {_units(k)}")
        if case.in_unit:
            return (BinaryCrossentropy, {"from_logits": logits and case.outputs_outside_unit},
                    f"multi-label rows in [0, 1] for {_units(k)}")
        return MeanSquaredError, {}, f"real-valued targets for {_units(k)}"
    raise ValueError(
        f"loss='auto' cannot pick a loss for output '{case.output}': {case.shape_problem()} Give "
        "integer labels of shape (n,), one-hot or multi-label rows shaped like the output, or real "
        "targets shaped like the output, or name the loss."
    )


class AutoLoss(Loss):
    """`loss="auto"`: the loss the targets and the output call for, by the note's rules.

    One output unit: binary cross-entropy for targets in [0, 1], else mean squared error.
    k units: sparse categorical cross-entropy for integer labels, categorical cross-entropy for
    rows summing to 1 (unless the output is a sigmoid), binary cross-entropy for other rows in
    [0, 1] (multi-label), else mean squared error. An output that no lamina softmax/sigmoid
    produced and whose values are not probabilities is taken as logits (`from_logits=True`).

    The choice is made on the first check before training (or the first call) and said once.
    """

    def __init__(self, reduction="sum_over_batch_size", name="auto"):
        super().__init__(reduction, name)
        self.picked = None

    def pick(self, y_true, y_pred, output_name="output") -> Loss:
        if self.picked is None:
            case = _Case(target_tensor(y_true, output_name), y_pred, self, output_name)
            cls, options, reason = _auto_choice(case)
            self.picked = cls(reduction=self.reduction, **options)
            print(f"loss='auto' for output '{output_name}': {self.picked!r}, for {reason}.")
        return self.picked

    def call(self, y_true, y_pred):
        return self.pick(y_true, y_pred).call(y_true, y_pred)


# ---------------------------------------------------------------------------- entry point
def _model_outputs(model, x):
    """(outputs, names) of a lamina model run in inference mode on `x` or on random inputs."""
    from lamina.data.adapters import to_tensors
    from lamina.layers.base import state_updates_disabled

    if not hasattr(model, "_modes"):
        raise ValueError(
            f"check() runs lamina models; for a {type(model).__name__} pass its output instead: "
            "check(y_true, module(x), loss)."
        )
    if x is not None:
        sample = tree.map_structure(lambda t: t[:_SAMPLE], to_tensors(x, "x"))
    else:
        inputs = model.inputs
        if not inputs:
            raise ValueError(
                f"check() needs an input to run model '{model.name}' on, and its input shape is "
                "unknown. Pass x=some_inputs, or the model's output: check(y_true, model(x), loss)."
            )
        generator = torch.Generator().manual_seed(0)

        def random_input(spec):
            shape = (4, *(_UNKNOWN_AXIS_SIZE if d is None else d for d in spec.shape[1:]))
            if not spec.dtype.is_floating_point:
                return torch.zeros(shape, dtype=spec.dtype)
            return torch.randn(shape, generator=generator, dtype=spec.dtype)

        sample = [random_input(s) for s in inputs]
        sample = sample[0] if len(sample) == 1 else sample
    with torch.no_grad(), state_updates_disabled(), model._modes(lambda: model.eval()):
        outputs = tree.flatten(model(model._to_device(sample)))
    symbolic = model.outputs or []
    if len(symbolic) == len(outputs):  # name each output after the layer that produces it
        return outputs, [t.node.layer.name for t in symbolic]
    return outputs, model._output_names(len(outputs))


def _per_output(value, names, what):
    if isinstance(value, dict):
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"check(): {what} for outputs {missing} are missing; outputs: {names}.")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(value) == len(names) and what == "losses":
        return list(value)
    if what == "targets":
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            raise ValueError(f"check(): the model has {len(names)} outputs {names}; give one target "
                             "array per output, as a list or a dict by output name.")
        return list(value)
    return [value] * len(names)


def check(y_true, model_or_output, loss, output_name="output", x=None) -> None:
    """Raise ValueError if the targets, the model's output and the loss cannot be right together.

    fit() and evaluate() run it on all the targets before the first step, so a label out of range
    in the last batch is found before an epoch is spent. Called directly, it checks a setup
    before training.

    Args:
        y_true: the targets (all of them, or as many as you want checked).
        model_or_output: an output tensor (an output of a lamina softmax/sigmoid layer carries
            that activation, so its misuse is found too), or a lamina Model: run in inference
            mode on the first 32 samples of `x`, or without `x` on random inputs of its input
            shape (unknown axis sizes become 16).
        loss: a loss name, function or object; "auto" is resolved here, and says what it picked.
            For several outputs a list or a dict by output name (targets likewise).
        output_name: the output's name in messages (for a model, its output layers' names).
        x: inputs for running a model.

    Raises:
        ValueError: naming what is wrong in the user's terms and the loss and output activation
            to use instead.

    Example:
        >>> model = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
        >>> lamina.losses.check(np.array([0, 2, 1]), model, "binary_crossentropy")
        Traceback (most recent call last):
        ValueError: binary_crossentropy does not fit output 'dense' (3 units, softmax): the targets
        are integer class labels (0..2), one per sample: ... Use
        loss='sparse_categorical_crossentropy' with activation='softmax' on the last layer (3 units).
    """
    from lamina.losses import get

    if isinstance(model_or_output, torch.nn.Module):
        outputs, names = _model_outputs(model_or_output, x)
    else:
        outputs, names = [model_or_output], [output_name]
    targets = [y_true] if len(outputs) == 1 else _per_output(y_true, names, "targets")
    losses = [loss] if len(outputs) == 1 else _per_output(loss, names, "losses")
    for yt, yp, lo, name in zip(targets, outputs, losses, names):
        if lo is None:
            continue
        lo = get(lo)
        t = target_tensor(yt, name)
        if isinstance(lo, AutoLoss):
            lo = lo.pick(t, yp, name)
        _check_case(_Case(t, yp, lo, name))
