"""The misuse catalogue: each wrong combination of targets, output and loss raises a ValueError that
names the fix; the valid combinations train without a word; loss="auto" picks by the same rules."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lamina
from lamina import layers, losses
from tests.markdown import python_blocks

N = 12
rng = np.random.default_rng(0)
LABELS = rng.integers(0, 3, N)
LABELS[:3] = [0, 1, 2]
ONE_HOT = np.eye(3, dtype="float32")[LABELS]
MULTI_HOT = rng.integers(0, 2, (N, 3)).astype("float32")
MULTI_HOT[0] = [1, 1, 0]
BINARY = (LABELS > 0).astype("float32")
SOFT = np.full((N, 3), 1 / 3, dtype="float32")


def _model(units, activation, inputs=4):
    return lamina.Sequential([layers.Input((inputs,)), layers.Dense(8, activation="relu"),
                              layers.Dense(units, activation=activation, name="head")])


def _replace(array, index, value):
    array = np.array(array, dtype="float64")
    array[index] = value
    return array


# (id, output units, output activation, loss, targets, what the message must suggest)
CATALOGUE = [
    ("bce-on-3-units-with-labels", 3, "softmax", "binary_crossentropy", LABELS,
     r"integer class labels \(0..2\).*loss='sparse_categorical_crossentropy' with "
     r"activation='softmax' on the last layer \(3 units\)"),
    ("bce-on-3-sigmoids-with-label-column", 3, "sigmoid", "binary_crossentropy", LABELS[:, None],
     r"loss='sparse_categorical_crossentropy' with activation='softmax'"),
    ("binary-focal-with-labels", 3, "sigmoid", losses.BinaryFocalCrossentropy(), LABELS,
     r"loss='sparse_categorical_crossentropy'"),
    ("softmax-with-multi-label-targets", 3, "softmax", "binary_crossentropy", MULTI_HOT,
     r"multi-label.*Use activation='sigmoid' on the last layer and keep loss='binary_crossentropy'"),
    ("softmax-bce-with-one-hot-rows", 3, "softmax", "binary_crossentropy", ONE_HOT,
     r"one-hot.*Use loss='categorical_crossentropy' with the softmax"),
    ("categorical-on-one-unit", 1, "sigmoid", "categorical_crossentropy", BINARY[:, None],
     r"always 0.*loss='binary_crossentropy' with activation='sigmoid'"),
    ("sparse-on-one-unit", 1, "sigmoid", "sparse_categorical_crossentropy", BINARY,
     r"one output unit per class.*loss='binary_crossentropy' with activation='sigmoid'"),
    ("categorical-with-integer-labels", 3, "softmax", "categorical_crossentropy", LABELS,
     r"expects one-hot rows of width 3.*loss='sparse_categorical_crossentropy'.*"
     r"lamina.utils.to_categorical\(y, 3\)"),
    ("categorical-focal-with-integer-labels", 3, "softmax", losses.CategoricalFocalCrossentropy(),
     LABELS, r"loss='sparse_categorical_crossentropy'"),
    ("sparse-with-one-hot-rows", 3, "softmax", "sparse_categorical_crossentropy", ONE_HOT,
     r"one-hot rows of width 3.*loss='categorical_crossentropy'.*y.argmax\(-1\)"),
    ("sparse-label-beyond-the-units", 3, "softmax", "sparse_categorical_crossentropy",
     _replace(LABELS, 5, 4), r"labels must be in 0..2.*range over 0..4.*Give the last layer 5 units"),
    ("sparse-negative-label", 3, "softmax", "sparse_categorical_crossentropy",
     _replace(LABELS, 4, -1), r"negative label -1.*pass ignore_class=-1"),
    ("sparse-non-integer-labels", 3, "softmax", "sparse_categorical_crossentropy",
     _replace(LABELS, 1, 0.5), r"non-integer values.*loss='categorical_crossentropy'"),
    ("bce-targets-outside-0-1", 3, "sigmoid", "binary_crossentropy", MULTI_HOT * 2.5,
     r"needs targets in \[0, 1\].*range over 0..2.5.*Rescale the targets"),
    ("bce-one-unit-three-classes", 1, "sigmoid", "binary_crossentropy", LABELS,
     r"3 classes, but one output unit.*Dense\(3, activation='softmax'\) with "
     r"loss='sparse_categorical_crossentropy'"),
    ("bce-with-minus-one-labels", 1, "sigmoid", "binary_crossentropy", BINARY * 2 - 1,
     r"-1/1.*\(y \+ 1\) / 2.*loss='hinge'"),
    ("nan-in-targets", 3, "softmax", "sparse_categorical_crossentropy", _replace(LABELS, 2, np.nan),
     r"contain NaN \(first in sample 2\). Drop or impute"),
    ("one-hot-width-differs", 3, "softmax", "categorical_crossentropy", np.eye(4)[LABELS],
     r"width 4, but the output has 3 units.*Give the last layer 4 units.*"
     r"to_categorical\(y, num_classes=3\)"),
    ("from-logits-after-softmax", 3, "softmax", losses.SparseCategoricalCrossentropy(from_logits=True),
     LABELS, r"already applies softmax.*squash them twice.*Drop from_logits=True"),
    ("from-logits-after-sigmoid", 1, "sigmoid", losses.BinaryCrossentropy(from_logits=True), BINARY,
     r"already applies sigmoid.*Drop from_logits=True"),
    ("softmax-over-one-unit", 1, "softmax", "binary_crossentropy", BINARY,
     r"softmax over a single unit always outputs 1.0.*activation='sigmoid'.*"
     r"loss='binary_crossentropy'"),
    ("categorical-on-sigmoid-units", 3, "sigmoid", "categorical_crossentropy", ONE_HOT,
     r"applies sigmoid, whose units do not sum to 1.*Use activation='softmax'"),
    ("sparse-on-sigmoid-units", 3, "sigmoid", "sparse_categorical_crossentropy", LABELS,
     r"applies sigmoid.*Use activation='softmax'"),
    ("sparse-on-a-linear-output", 3, None, "sparse_categorical_crossentropy", LABELS,
     r"not probabilities.*pass from_logits=True.*activation='softmax'"),
    ("bce-on-a-linear-output", 1, None, "binary_crossentropy", BINARY,
     r"not probabilities.*pass from_logits=True.*activation='sigmoid'"),
    ("mse-on-class-labels", 3, None, "mse", LABELS,
     r"every label would be compared with all 3 units.*loss='sparse_categorical_crossentropy'"),
    ("mse-shape-mismatch", 2, None, "mse", rng.standard_normal((N, 3)),
     r"shape \(None, 3\) but the output has shape \(None, 2\).*as many units as the targets"),
    ("poisson-on-signed-targets", 1, "softplus", "poisson", rng.standard_normal(N),
     r"models counts.*'mse'"),
    ("poisson-on-a-linear-output", 1, None, "poisson", rng.poisson(2, N).astype("float32"),
     r"negative rate is NaN.*activation='softplus'"),
    ("hinge-on-three-classes", 1, None, "hinge", LABELS,
     r"labels -1/1 \(or 0/1\).*loss='categorical_hinge'"),
    ("kl-on-counts", 3, "softmax", "kl_divergence", ONE_HOT * 3,
     r"compares probability distributions"),
    ("string-labels", 3, "softmax", "sparse_categorical_crossentropy", np.array(["cat", "dog"] * 6),
     r"hold strings.*np.unique\(y, return_inverse=True\)\[1\]"),
]


@pytest.mark.parametrize("units,activation,loss,targets,fix", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_each_misuse_is_explained_with_its_fix(units, activation, loss, targets, fix):
    with pytest.raises(ValueError, match=fix):
        losses.check(targets, _model(units, activation), loss)


# Targets Keras trains on whose categorical cross-entropy is defined, only unusual: a warning, and
# training goes on (Keras' functional-API guide trains on random multi-hot rows).
CAUTIONS = [
    ("categorical-with-multi-hot-rows", MULTI_HOT,
     r"several 1s.*training goes on.*activation='sigmoid' on the last layer with loss='binary_crossentropy'"),
    ("categorical-rows-not-summing-to-one", SOFT * 0.6, r"row 0 sums to 0.6.*normalize the rows"),
    ("categorical-rows-outside-0-1", ONE_HOT * 2, r"range over 0..2.*to_categorical"),
]


@pytest.mark.parametrize("targets,message", [c[1:] for c in CAUTIONS], ids=[c[0] for c in CAUTIONS])
def test_unusual_categorical_targets_warn_and_train(targets, message):
    model = _model(3, "softmax")
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.warns(UserWarning, match=message):
        history = model.fit(rng.standard_normal((N, 4)).astype("float32"), targets, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_negative_categorical_targets_are_refused():
    with pytest.raises(ValueError, match=r"range over -1..1.*to_categorical"):
        losses.check(ONE_HOT * 2 - 1, _model(3, "softmax"), "categorical_crossentropy")


def test_the_catalogue_is_complete():
    assert len(CATALOGUE) >= 20


def test_message_names_the_loss_the_output_and_its_activation():
    with pytest.raises(ValueError, match=r"^binary_crossentropy does not fit output 'head' \(3 units, "
                                         r"softmax\): the targets are integer class labels"):
        losses.check(LABELS, _model(3, "softmax"), "binary_crossentropy")


def test_fit_and_evaluate_stop_before_the_first_step():
    model = _model(3, "softmax")
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    before = model.get_weights()
    x = rng.standard_normal((N, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy"):
        model.fit(x, LABELS, verbose=0)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy"):
        model.evaluate(x, LABELS, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_bad_label_in_the_last_batch_is_found_before_training():
    model = _model(3, "softmax")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    y = _replace(LABELS, N - 1, 7)
    with pytest.raises(ValueError, match=r"range over 0..7.*8 units"):
        model.fit(rng.standard_normal((N, 4)).astype("float32"), y, batch_size=4, verbose=0)


# ---------------------------------------------------------------------------- valid combinations
SEQUENCE_LABELS = rng.integers(0, 3, (N, 5))
VALID = [
    ("multi-class-sparse", 3, "softmax", "sparse_categorical_crossentropy", LABELS),
    ("multi-class-label-column", 3, "softmax", "sparse_categorical_crossentropy", LABELS[:, None]),
    ("multi-class-one-hot", 3, "softmax", "categorical_crossentropy", ONE_HOT),
    ("multi-class-focal", 3, "softmax", losses.CategoricalFocalCrossentropy(), ONE_HOT),
    ("multi-class-logits", 3, None, losses.SparseCategoricalCrossentropy(from_logits=True), LABELS),
    ("ignored-label", 3, "softmax", losses.SparseCategoricalCrossentropy(ignore_class=-1),
     _replace(LABELS, 4, -1)),
    ("binary", 1, "sigmoid", "binary_crossentropy", BINARY),
    ("binary-column", 1, "sigmoid", "binary_crossentropy", BINARY[:, None]),
    ("binary-logits", 1, None, losses.BinaryCrossentropy(from_logits=True), BINARY),
    ("binary-focal", 1, "sigmoid", losses.BinaryFocalCrossentropy(apply_class_balancing=True), BINARY),
    ("multi-label", 3, "sigmoid", "binary_crossentropy", MULTI_HOT),
    ("soft-labels-categorical", 3, "softmax", "categorical_crossentropy", SOFT),
    ("soft-labels-binary", 3, "sigmoid", "binary_crossentropy", MULTI_HOT * 0.8 + 0.1),
    ("label-smoothing-categorical", 3, "softmax", losses.CategoricalCrossentropy(label_smoothing=0.1),
     ONE_HOT),
    ("label-smoothing-binary", 1, "sigmoid", losses.BinaryCrossentropy(label_smoothing=0.1), BINARY),
    ("two-class-softmax", 2, "softmax", "sparse_categorical_crossentropy", (LABELS > 0).astype(int)),
    ("regression", 2, None, "mse", rng.standard_normal((N, 2))),
    ("counts", 1, "softplus", "poisson", rng.poisson(2, N).astype("float32")),
    ("margin", 1, None, "hinge", BINARY * 2 - 1),
]


@pytest.mark.parametrize("units,activation,loss,targets", [c[1:] for c in VALID],
                         ids=[c[0] for c in VALID])
def test_valid_combinations_train_without_a_word(units, activation, loss, targets, capsys):
    model = _model(units, activation)
    model.compile(optimizer="sgd", loss=loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(rng.standard_normal((N, 4)).astype("float32"), targets, batch_size=6,
                            epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert capsys.readouterr().out == ""


def test_sequence_outputs_with_one_label_per_step_are_valid():
    inp = layers.Input((5, 4))
    model = lamina.Model(inp, layers.Dense(3, activation="softmax")(inp))
    losses.check(SEQUENCE_LABELS, model, "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"labels must be in 0..2"):
        losses.check(_replace(SEQUENCE_LABELS, (3, 4), 3), model, "sparse_categorical_crossentropy")


def test_class_axis_option_is_respected():
    """Classes on axis 1 of a (n, classes, steps) output: labels are (n, steps)."""
    output = torch.softmax(torch.randn(N, 3, 5), dim=1)
    losses.check(SEQUENCE_LABELS, output, losses.SparseCategoricalCrossentropy(axis=1))
    losses.check(np.eye(3)[SEQUENCE_LABELS].transpose(0, 2, 1), output,
                 losses.CategoricalCrossentropy(axis=1))


# ---------------------------------------------------------------------------- loss="auto"
@pytest.mark.parametrize("units,activation,targets,picked", [
    (3, "softmax", LABELS, "SparseCategoricalCrossentropy(from_logits=False"),
    (3, "softmax", ONE_HOT, "CategoricalCrossentropy(from_logits=False"),
    (3, None, LABELS, "SparseCategoricalCrossentropy(from_logits=True"),
    (1, "sigmoid", BINARY, "BinaryCrossentropy(from_logits=False"),
    (1, None, BINARY, "BinaryCrossentropy(from_logits=True"),
    (3, "sigmoid", MULTI_HOT, "BinaryCrossentropy(from_logits=False"),
    (3, "sigmoid", ONE_HOT, "BinaryCrossentropy(from_logits=False"),
    (2, None, rng.standard_normal((N, 2)), "MeanSquaredError("),
])
def test_auto_picks_by_the_notes_rules_and_says_so_once(units, activation, targets, picked, capsys):
    model = _model(units, activation)
    model.compile(optimizer="sgd", loss="auto")
    x = rng.standard_normal((N, 4)).astype("float32")
    model.fit(x, targets, epochs=1, verbose=0)
    model.evaluate(x, targets, verbose=0)
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"loss='auto' for output 'output': {picked}")
    assert repr(model._outputs_spec[0].loss.picked).startswith(picked)


def test_auto_gives_the_same_loss_as_the_loss_it_picked(capsys):
    probs = torch.softmax(torch.randn(N, 3), -1)
    auto = losses.get("auto")
    value = auto(LABELS, probs)
    assert capsys.readouterr().out.startswith("loss='auto' for output 'output': "
                                              "SparseCategoricalCrossentropy")
    torch.testing.assert_close(value, losses.SparseCategoricalCrossentropy()(LABELS, probs))


def test_auto_picks_then_the_checks_still_apply():
    with pytest.raises(ValueError, match=r"multi-label.*Use activation='sigmoid'"):
        losses.check(MULTI_HOT, _model(3, "softmax"), "auto")


def test_auto_refuses_targets_that_fit_no_rule():
    with pytest.raises(ValueError, match=r"loss='auto' cannot pick a loss for output 'head'.*"
                                         r"shape \(None, 4, 2\)"):
        losses.check(np.zeros((N, 4, 2)), _model(3, "softmax"), "auto")


# ---------------------------------------------------------------------------- check() called directly
def test_check_runs_a_model_on_given_inputs():
    x = rng.standard_normal((N, 4)).astype("float32")
    losses.check(LABELS, _model(3, "softmax"), "sparse_categorical_crossentropy", x=x)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy"):
        losses.check(LABELS, _model(3, "softmax"), "categorical_crossentropy", x=x)


def test_check_takes_an_output_tensor_or_array():
    losses.check(LABELS, torch.softmax(torch.randn(4, 3), -1).numpy(), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"does not fit output 'scores'.*from_logits=True"):
        losses.check(LABELS, torch.randn(4, 3) * 5, "sparse_categorical_crossentropy",
                     output_name="scores")


def test_check_on_a_model_without_input_shape_asks_for_x():
    class Net(lamina.Model):
        def __init__(self):
            super().__init__()
            self.head = layers.Dense(3, activation="softmax")

        def call(self, inputs):
            return self.head(inputs)

    with pytest.raises(ValueError, match=r"its input shape is unknown. Pass x=some_inputs"):
        losses.check(LABELS, Net(), "sparse_categorical_crossentropy")
    losses.check(LABELS, Net(), "sparse_categorical_crossentropy",
                 x=rng.standard_normal((N, 4)).astype("float32"))


def test_check_on_a_multi_output_model_names_the_output():
    inp = layers.Input((4,))
    kind = layers.Dense(3, activation="softmax", name="kind")(inp)
    size = layers.Dense(1, name="size")(inp)
    model = lamina.Model(inp, [kind, size])
    targets = {"kind": LABELS, "size": rng.standard_normal(N)}
    losses.check(targets, model, {"kind": "sparse_categorical_crossentropy", "size": "mse"})
    with pytest.raises(ValueError, match=r"does not fit output 'kind'"):
        losses.check(targets, model, ["binary_crossentropy", "mse"])
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match=r"categorical_crossentropy does not fit output 'kind'"):
        model.fit(rng.standard_normal((N, 4)).astype("float32"), [LABELS, targets["size"]], verbose=0)


# ---------------------------------------------------------------------------- the guide
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "losses.md"
EXAMPLES = python_blocks("docs/losses.md")


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_the_guide_examples_run(code):
    exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide"})


def test_the_guide_has_an_example_per_task():
    assert len(EXAMPLES) >= 6
    for task in ("sparse_categorical_crossentropy", '"binary_crossentropy"', "activation=\"sigmoid\"",
                 "label_smoothing", "loss=\"auto\""):
        assert any(task in code for code in EXAMPLES), task
