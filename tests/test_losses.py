"""Losses against Keras 3 (torch backend) on random inputs: values, reductions, sample weights, masks
and the gradients with respect to the predictions; the stable logits path against float64."""

import numpy as np
import pytest
import torch

import lamina
from lamina import activations, layers, losses
from tests.parity import keras

N, K = 6, 4


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _data(rng, kind, shape):
    """Targets and predictions of every kind the losses take."""
    n_classes = shape[-1]
    if kind == "probs":
        return _softmax(rng.standard_normal(shape)).astype("float32")
    if kind == "unit":
        return rng.uniform(0.05, 0.95, shape).astype("float32")
    if kind == "logits" or kind == "real":
        return rng.standard_normal(shape).astype("float32")
    if kind == "positive":
        return rng.uniform(0.1, 2.0, shape).astype("float32")
    if kind == "onehot":
        return np.eye(n_classes, dtype="float32")[rng.integers(0, n_classes, shape[:-1])]
    if kind == "labels":
        return rng.integers(0, n_classes, shape[:-1])
    if kind == "labels_col":
        return rng.integers(0, n_classes, (*shape[:-1], 1))
    if kind == "binary":
        return rng.integers(0, 2, shape).astype("float32")
    if kind == "signed":
        return rng.choice([-1.0, 1.0], shape).astype("float32")
    if kind == "counts":
        return rng.poisson(1.5, shape).astype("float32")
    raise AssertionError(kind)


def _value_and_grad(loss, y_true, y_pred, sample_weight=None, mask=None, mask_attr=None):
    pred = torch.tensor(y_pred, requires_grad=True)
    if mask is not None:
        setattr(pred, mask_attr, torch.as_tensor(mask))
    value = loss(y_true, pred, sample_weight=sample_weight)
    (grad,) = torch.autograd.grad(value.sum(), pred)
    return value.detach().numpy(), grad.numpy()


def assert_loss_parity(lamina_loss, keras_loss, y_true, y_pred, atol=1e-5, rtol=1e-5, **kwargs):
    l_value, l_grad = _value_and_grad(lamina_loss, y_true, y_pred, mask_attr="_lamina_mask", **kwargs)
    k_value, k_grad = _value_and_grad(keras_loss, y_true, y_pred, mask_attr="_keras_mask", **kwargs)
    assert l_value.shape == k_value.shape
    np.testing.assert_allclose(l_value, k_value, atol=atol, rtol=rtol, err_msg="loss value")
    np.testing.assert_allclose(l_grad, k_grad, atol=atol, rtol=rtol, err_msg="gradient")


# (class name, options, target kind, prediction kind, shape)
CASES = [
    ("BinaryCrossentropy", {}, "binary", "unit", (N, K)),
    ("BinaryCrossentropy", {"from_logits": True}, "binary", "logits", (N, K)),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, "unit", "unit", (N, K)),
    ("BinaryCrossentropy", {"axis": 0}, "binary", "unit", (N, K)),
    ("BinaryCrossentropy", {}, "labels", "unit", (N, 1)),  # (n,) targets for (n, 1) outputs
    ("BinaryFocalCrossentropy", {}, "binary", "unit", (N, K)),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 3.0},
     "binary", "unit", (N, K)),
    ("BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary", "logits",
     (N, K)),
    ("CategoricalCrossentropy", {}, "onehot", "probs", (N, K)),
    ("CategoricalCrossentropy", {}, "probs", "probs", (N, K)),  # soft targets
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot", "logits", (N, K)),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot", "probs", (N, K)),
    ("CategoricalCrossentropy", {}, "onehot", "unit", (N, K)),  # rows normalized as Keras does
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot", "logits", (2, 5, K)),
    ("CategoricalFocalCrossentropy", {}, "onehot", "probs", (N, K)),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.2, 0.3, 0.4], "gamma": 1.0}, "onehot",
     "probs", (N, K)),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "onehot",
     "logits", (N, K)),
    ("SparseCategoricalCrossentropy", {}, "labels", "probs", (N, K)),
    ("SparseCategoricalCrossentropy", {}, "labels_col", "probs", (N, K)),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "labels", "logits", (N, K)),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "labels", "logits", (2, 5, K)),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "labels", "probs", (12, K)),
    ("KLDivergence", {}, "probs", "probs", (N, K)),
    ("Poisson", {}, "counts", "positive", (N, K)),
    ("Hinge", {}, "signed", "logits", (N, K)),
    ("Hinge", {}, "binary", "logits", (N, K)),
    ("SquaredHinge", {}, "binary", "logits", (N, K)),
    ("CategoricalHinge", {}, "onehot", "logits", (N, K)),
    ("CosineSimilarity", {}, "real", "real", (N, K)),
    ("CosineSimilarity", {"axis": 0}, "real", "real", (N, K)),
    ("MeanSquaredError", {}, "real", "real", (N, K)),
    ("MeanAbsoluteError", {}, "real", "real", (N, K)),
    ("MeanAbsolutePercentageError", {}, "positive", "real", (N, K)),
    ("MeanSquaredLogarithmicError", {}, "positive", "positive", (N, K)),
    ("Huber", {}, "real", "real", (N, K)),
    ("Huber", {"delta": 0.3}, "real", "real", (N, K)),
    ("LogCosh", {}, "real", "real", (N, K)),
    ("Dice", {}, "binary", "unit", (N, K)),
    ("Dice", {"axis": 1}, "binary", "unit", (N, K)),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "binary", "unit", (N, K)),
    ("Tversky", {"axis": 1}, "binary", "unit", (N, K)),
]


@pytest.mark.parametrize("name,options,target,prediction,shape", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[4]}" for c in CASES])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", None])
def test_every_loss_and_option_matches_keras(rng, name, options, target, prediction, shape, reduction):
    y_true, y_pred = _data(rng, target, shape), _data(rng, prediction, shape)
    assert_loss_parity(getattr(losses, name)(reduction=reduction, **options),
                       getattr(keras.losses, name)(reduction=reduction, **options), y_true, y_pred)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight",
                                       "none"])
@pytest.mark.parametrize("weight_shape", [None, (N,), (N, 1)])
def test_reductions_and_sample_weights_match_keras(rng, reduction, weight_shape):
    y_true, y_pred = _data(rng, "real", (N, K)), _data(rng, "real", (N, K))
    weights = None if weight_shape is None else rng.uniform(0, 2, weight_shape).astype("float32")
    assert_loss_parity(losses.MeanSquaredError(reduction=reduction),
                       keras.losses.MeanSquaredError(reduction=reduction), y_true, y_pred,
                       sample_weight=weights)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_ignore_class_averages_over_the_kept_labels_as_keras(rng, reduction):
    y_true = np.array([0, 3, 3, 1, 2, 3])
    y_pred = _data(rng, "probs", (N, K))
    weights = rng.uniform(0.5, 2, N).astype("float32")
    for sample_weight in (None, weights):
        assert_loss_parity(losses.SparseCategoricalCrossentropy(ignore_class=3, reduction=reduction),
                           keras.losses.SparseCategoricalCrossentropy(ignore_class=3, reduction=reduction),
                           y_true, y_pred, sample_weight=sample_weight)


def test_ignore_class_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])
    value = losses.SparseCategoricalCrossentropy(ignore_class=-1)(torch.tensor([0, -1, 1]), probs)
    np.testing.assert_allclose(float(value), -(np.log(0.5) + np.log(0.1)) / 2, rtol=1e-6)


@pytest.mark.parametrize("label", [-100, -1, 4])
def test_out_of_range_labels_raise_including_torchs_ignore_index(label):
    """A label outside [0, classes) is an error, -100 too (torch's nll_loss ignores -100 by
    default; lamina's sparse cross-entropy does not); fit's target checks name it first."""
    probs = torch.softmax(torch.randn(3, 4), -1)
    with pytest.raises(IndexError):
        losses.sparse_categorical_crossentropy(torch.tensor([0, label, 1]), probs)
    model = lamina.Sequential([lamina.Input((5,)), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="labels must be in 0..3"):
        model.fit(np.zeros((3, 5), "float32"), np.array([0, label, 1]), verbose=0)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_output_mask_drops_padded_steps_as_keras(rng, reduction):
    """A Masking/Embedding mask on the output leaves padded time steps out of the loss."""
    y_true = _data(rng, "labels", (3, 5, K))
    y_pred = _data(rng, "probs", (3, 5, K))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    assert_loss_parity(losses.SparseCategoricalCrossentropy(reduction=reduction),
                       keras.losses.SparseCategoricalCrossentropy(reduction=reduction),
                       y_true, y_pred, mask=mask)


def test_label_smoothing_over_a_class_axis_other_than_the_last():
    """The smoothing mass is spread over the k classes of `axis` (Keras divides by the size of
    the last axis whatever `axis` is; lamina follows Keras' documented formula)."""
    y_true = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # classes on axis 1 (3 of them)
    logits = torch.tensor([[[0.2, 1.0], [0.5, -1.0], [0.1, 0.3]]])
    value = losses.categorical_crossentropy(y_true, logits, from_logits=True, label_smoothing=0.3,
                                            axis=1)
    smoothed = y_true * 0.7 + 0.3 / 3
    expected = -(smoothed * torch.log_softmax(logits, dim=1)).sum(1)
    torch.testing.assert_close(value, expected)


# ---------------------------------------------------------------------------- the logits path
@pytest.mark.parametrize("name,options,target", [
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "labels"),
    ("CategoricalFocalCrossentropy", {}, "onehot"),
])
def test_softmax_output_uses_its_logits_like_keras_from_logits(rng, name, options, target):
    logits = _data(rng, "logits", (N, K)) * 3
    y_true = _data(rng, target, (N, K))
    z = torch.tensor(logits, requires_grad=True)
    value = getattr(losses, name)(**options)(y_true, activations.apply(activations.softmax, z))
    (grad,) = torch.autograd.grad(value, z)
    zk = torch.tensor(logits, requires_grad=True)
    expected = getattr(keras.losses, name)(from_logits=True, **options)(y_true, zk)
    (expected_grad,) = torch.autograd.grad(expected, zk)
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["BinaryCrossentropy", "BinaryFocalCrossentropy"])
def test_sigmoid_output_uses_its_logits_like_keras_from_logits(rng, name):
    logits, y_true = _data(rng, "logits", (N, K)) * 3, _data(rng, "binary", (N, K))
    z = torch.tensor(logits, requires_grad=True)
    value = getattr(losses, name)()(y_true, activations.apply(activations.sigmoid, z))
    (grad,) = torch.autograd.grad(value, z)
    zk = torch.tensor(logits, requires_grad=True)
    expected = getattr(keras.losses, name)(from_logits=True)(y_true, zk)
    (expected_grad,) = torch.autograd.grad(expected, zk)
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad.numpy(), atol=1e-6)


def _dense_head(units, activation, logits):
    """A Dense layer whose pre-activations on input [[1]] are exactly `logits` (one row per class
    row of `logits`, fed as a one-hot input)."""
    n = logits.shape[0]
    layer = layers.Dense(units, activation=activation)
    layer(torch.zeros(1, n))
    layer.set_weights([logits.astype("float32"), np.zeros(units, "float32")])
    return layer, torch.eye(n)


def test_extreme_softmax_logits_give_the_float64_loss_and_gradient():
    """Logits of ±1e4 through a softmax output: finite loss, and the gradient of the layer's
    kernel equal to the float64 reference (softmax(z) - onehot) / n."""
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [2.0, -1e4, 1e4]])
    labels = np.array([1, 1, 2])  # the first two rows are confidently wrong or right
    head, x = _dense_head(3, "softmax", z)
    value = losses.SparseCategoricalCrossentropy()(labels, head(x))
    value.backward()
    z64 = torch.tensor(z, dtype=torch.float64)
    reference = (torch.logsumexp(z64, -1) - z64[torch.arange(3), labels]).mean()
    onehot = torch.eye(3, dtype=torch.float64)[labels]
    reference_grad = (torch.softmax(z64, -1) - onehot) / 3  # dL/dz; x is the identity
    assert torch.isfinite(value) and value.item() == pytest.approx(float(reference), rel=1e-6)
    np.testing.assert_allclose(head.kernel.grad.T.numpy(), reference_grad.numpy(), atol=1e-7)
    # Keras on the same probabilities clips them, so its loss is stuck at -log(1e-7) per sample.
    keras_value = keras.losses.SparseCategoricalCrossentropy()(labels, torch.softmax(torch.tensor(z), -1))
    assert float(keras_value) < 12 < value.item()


def test_extreme_sigmoid_logits_give_the_float64_loss_and_gradient():
    z = np.array([[1e4, -1e4], [-1e4, 50.0]])
    y = np.array([[0.0, 0.0], [1.0, 1.0]], "float32")
    head, x = _dense_head(2, "sigmoid", z)
    value = losses.BinaryCrossentropy()(y, head(x))
    value.backward()
    z64 = torch.tensor(z, dtype=torch.float64)
    y64 = torch.tensor(y, dtype=torch.float64)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(z64, y64)
    reference_grad = (torch.sigmoid(z64) - y64) / 4
    assert value.item() == pytest.approx(float(reference), rel=1e-6)
    np.testing.assert_allclose(head.kernel.grad.T.numpy(), reference_grad.numpy(), atol=1e-7)


def test_extreme_logits_train_without_nan_in_fit():
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(3, activation="softmax")])
    model.layers[0].set_weights([np.eye(3, dtype="float32") * 1e4, np.zeros(3, "float32")])
    model.compile(optimizer=lamina.optimizers.SGD(1e-5), loss="categorical_crossentropy")
    history = model.fit(np.eye(3, dtype="float32"), np.eye(3, dtype="float32")[[1, 2, 0]],
                        epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and history.history["loss"][0] > 1e3
    assert all(np.isfinite(w).all() for w in model.get_weights())


# ---------------------------------------------------------------------------- names and configs
@pytest.mark.parametrize("identifier,cls", [
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("bce", losses.BinaryCrossentropy), ("mse", losses.MeanSquaredError),
    ("kld", losses.KLDivergence), ("mape", losses.MeanAbsolutePercentageError),
    ("msle", losses.MeanSquaredLogarithmicError), ("logcosh", losses.LogCosh),
    ("huber", losses.Huber), ("CategoricalFocalCrossentropy", losses.CategoricalFocalCrossentropy),
    (losses.categorical_hinge, losses.CategoricalHinge), (losses.Poisson, losses.Poisson),
    ("auto", losses.AutoLoss),
])
def test_get_resolves_keras_names_classes_and_functions(identifier, cls):
    assert type(losses.get(identifier)) is cls


@pytest.mark.parametrize("keras_loss", [
    keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5),
    keras.losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"),
    keras.losses.Tversky(alpha=0.3, beta=0.7),  # (Keras' Huber config drops `delta`: not used here)
], ids=lambda k: type(k).__name__)
def test_keras_configs_rebuild_the_same_loss(rng, keras_loss):
    lamina_loss = losses.get(keras.losses.serialize(keras_loss))
    kind = {"SparseCategoricalCrossentropy": ("labels", "logits"), "Tversky": ("binary", "unit")}.get(
        type(keras_loss).__name__, ("onehot", "probs"))
    y_true, y_pred = _data(rng, kind[0], (N, K)), _data(rng, kind[1], (N, K))
    assert_loss_parity(lamina_loss, keras_loss, y_true, y_pred)
    rebuilt = type(lamina_loss).from_config(lamina_loss.get_config())
    assert rebuilt.get_config() == lamina_loss.get_config()


def test_a_plain_function_is_a_loss():
    def doubled_error(y_true, y_pred):
        return 2 * (y_pred - y_true).abs().mean(-1)

    loss = losses.get(doubled_error)
    assert loss.name == "doubled_error"
    value = loss(np.zeros((2, 3), "float32"), torch.ones(2, 3), sample_weight=np.array([1.0, 0.0]))
    assert float(value) == pytest.approx(1.0)


@pytest.mark.parametrize("make,message", [
    (lambda: losses.BinaryCrossentropy(label_smoothing=1.5),
     r"`label_smoothing` must be a number in \[0, 1\]"),
    (lambda: losses.MeanSquaredError(reduction="avg"),
     r"`reduction` must be one of .*Received: reduction='avg'"),
    (lambda: losses.BinaryFocalCrossentropy(gamma=-1), r"`gamma` must be a number >= 0"),
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class="void"), r"`ignore_class` must be an int"),
    (lambda: losses.CategoricalCrossentropy(axis=True), r"`axis` must be an int"),
    (lambda: losses.get("sparse_categorial_crossentropy"), r"Did you mean 'sparse_categorical_crossentropy'"),
])
def test_bad_options_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_direct_call_with_mismatched_shapes_points_to_check():
    with pytest.raises(ValueError, match=r"binary_crossentropy: targets and outputs must have the "
                                         r"same shape.*\(4, 3\).*losses.check"):
        losses.binary_crossentropy(torch.zeros(4, 2), torch.full((4, 3), 0.5))


def test_fit_with_a_focal_loss_and_label_smoothing_follows_keras(rng):
    x = rng.standard_normal((32, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]

    def build(L):
        return [L.Input((4,)), L.Dense(8, activation="tanh"), L.Dense(3, activation="softmax")]

    km, lm = keras.Sequential(build(keras.layers)), lamina.Sequential(build(layers))
    lm.set_weights(km.get_weights())
    options = {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalFocalCrossentropy(**options))
    lm.compile(optimizer=lamina.optimizers.SGD(0.1), loss=losses.CategoricalFocalCrossentropy(**options))
    kh = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    lh = lm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(lh.history["loss"], kh.history["loss"], rtol=1e-5)


def test_half_precision_outputs_are_scored_in_float32_with_their_logits():
    z = torch.tensor([[30.0, -30.0, 0.0]], dtype=torch.bfloat16)
    probs = activations.apply(activations.softmax, z)
    value = losses.SparseCategoricalCrossentropy()(np.array([1]), probs)
    assert value.dtype == torch.float32 and value.item() == pytest.approx(60.0, rel=1e-6)


def _softmax_head(L):
    return [L.Input((4,)), L.Dense(3, activation="softmax")]


CLASS_WEIGHT = {0: 1.0, 1: 3.0, 2: 0.5}


@pytest.mark.parametrize("targets", ["sparse", "onehot"])
@pytest.mark.parametrize("weighting", ["class_weight", "sample_weight"])
def test_fit_with_class_or_sample_weights_follows_keras(rng, targets, weighting):
    x = rng.standard_normal((24, 4)).astype("float32")
    labels = rng.integers(0, 3, 24)
    y = labels if targets == "sparse" else np.eye(3, dtype="float32")[labels]
    loss = "sparse_categorical_crossentropy" if targets == "sparse" else "categorical_crossentropy"
    weights = CLASS_WEIGHT if weighting == "class_weight" else rng.uniform(0.5, 1.5, 24).astype("float32")
    km, lm = keras.Sequential(_softmax_head(keras.layers)), lamina.Sequential(_softmax_head(layers))
    lm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    lm.compile(optimizer=lamina.optimizers.SGD(0.1), loss=loss)
    fit = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0, weighting: weights}
    kh, lh = km.fit(x, y, **fit), lm.fit(x, y, **fit)
    np.testing.assert_allclose(lh.history["loss"], kh.history["loss"], rtol=1e-5)


def test_class_weight_times_sample_weight_by_hand(rng):
    """Keras refuses both at once; lamina multiplies them: mean of w_class * w_sample * loss."""
    x = rng.standard_normal((8, 4)).astype("float32")
    labels = rng.integers(0, 3, 8)
    sample_weight = rng.uniform(0.5, 1.5, 8).astype("float32")
    model = lamina.Sequential(_softmax_head(layers))
    model.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    probabilities = model.predict(x)
    by_hand = np.mean([CLASS_WEIGHT[c] * w * -np.log(p[c])
                       for c, w, p in zip(labels, sample_weight, probabilities)])
    value = model.train_on_batch(x, labels, sample_weight=sample_weight, class_weight=CLASS_WEIGHT)
    assert value == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("name, y_true, y_pred", [
    ("mean_absolute_percentage_error", [4.0, 5.0], [3.0, 5.5]),
    ("mean_squared_error", [[1.0, 2.0]], [[0.5, 2.5]]),
    ("binary_crossentropy", [[1.0, 0.0]], [[0.7, 0.2]]),
    ("categorical_crossentropy", [[0.0, 1.0], [1.0, 0.0]], [[0.2, 0.8], [0.6, 0.4]]),
    ("sparse_categorical_crossentropy", [1, 0], [[0.2, 0.8], [0.6, 0.4]]),
])
def test_loss_functions_take_numpy_arrays_as_keras(name, y_true, y_pred):
    y_true, y_pred = np.array(y_true), np.array(y_pred, dtype="float32")
    got = getattr(lamina.losses, name)(y_true, y_pred)
    want = np.asarray(getattr(keras.losses, name)(y_true, y_pred))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
