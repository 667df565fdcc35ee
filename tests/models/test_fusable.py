"""The model-level fusions take only layers whose every option they declare (models/_fusable.py):
a layer with an undeclared option or value is refused, and over each involved layer's config space
(hypothesis) the fused model computes what the unfused one does: the Dense chain against the
layers' mathematics in float64, the hand-derived Dense step against autograd's step, the folded
ReLU against BatchNormalization and Activation run one after the other."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamina
from lamina import layers
from lamina.kernels import dropout as _dropout_kernel
from lamina.kernels import linear as _matvec_kernel
from lamina.kernels import normalization as norm_kernels
from lamina.models import _dense_chain, _dense_step, _folding, _fusable, sequential
from tests.models.test_dense_step import assert_same_training, train

pytestmark = pytest.mark.usefixtures("generic_blas")  # the routes, on every CPU

PROPERTY = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REGULARIZER = st.sampled_from([None, "l2"])


class Extended(layers.Dense):
    """A Dense subclass: same config, but the fusion does not know its `call`."""


def test_accepts_declared_classes_keys_and_values_only():
    declared = {layers.Dense: _fusable.fields("units", "activation", "use_bias", "kernel_initializer",
                                              "bias_initializer", "kernel_regularizer",
                                              bias_regularizer=(None,))}
    assert _fusable.accepts(layers.Dense(3), declared)
    assert not _fusable.accepts(layers.Dense(3, bias_regularizer="l2"), declared)  # a value not accepted
    assert not _fusable.accepts(layers.Dense(3, activity_regularizer="l2"), declared)  # an undeclared key
    assert not _fusable.accepts(layers.Dense(3, dtype="float64"), declared)  # the base Layer's dtype
    assert not _fusable.accepts(Extended(3), declared)
    assert not _fusable.accepts(layers.Dropout(0.1), declared)


def with_unknown_option(layer):
    """`layer` as if its class had gained an option the fusions have never seen."""
    config = layer.get_config()
    layer.get_config = lambda: {**config, "lora_rank": 4}
    return layer


@pytest.mark.parametrize("unknown", [False, True])
def test_every_fusion_refuses_a_layer_with_an_unknown_option(unknown, monkeypatch):
    dense = layers.Dense(8, activation="relu")
    if unknown:
        with_unknown_option(dense)
    dense.build((None, 4))
    assert _dense_chain.chainable(dense) is not unknown
    steps, real = [], _dense_step.DenseStackStep.for_model
    monkeypatch.setattr(_dense_step.DenseStackStep, "for_model",
                        classmethod(lambda cls, model: steps.append(real(model))))
    model = lamina.Sequential([layers.Input((4,)), dense, layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 4), "float32"), np.zeros(4), verbose=0)
    assert (steps[0] is None) is unknown
    if not unknown:
        return
    norm, relu = layers.BatchNormalization(), with_unknown_option(layers.Activation("relu"))
    x = torch.zeros(4, 3)
    assert not _folding.relu_folds_into(norm, relu, x, True)
    assert _folding.relu_folds_into(layers.BatchNormalization(), layers.Activation("relu"), x, True)


# Each property test draws a model from the options its fusion implements and then changes at most
# one of them (`deviation`, one test case each) to a value it does not: with none, the fusion must
# run, with one, it must leave the layers to their own calls; either way the numbers must match.
def examples(n):
    return settings(PROPERTY, max_examples=n)


# ----------------------------------------------------------------------- the Dense chain
ACTIVATIONS = {"relu": torch.relu, "linear": lambda t: t, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
               "softmax": lambda t: torch.softmax(t, -1)}
CHAIN_DEVIATIONS = {"none": {}, "activity_regularizer": {"activity_regularizer": "l2"}}


@pytest.mark.skipif(_matvec_kernel.library() is None, reason="no C compiler")
@pytest.mark.parametrize("deviation", CHAIN_DEVIATIONS)
@examples(4)
@given(data=st.data())
def test_dense_chain_over_the_dense_config_space(deviation, data, count_calls):
    chains = count_calls(_matvec_kernel, "dense_chain")
    configs = [data.draw(st.fixed_dictionaries({
        "units": st.sampled_from([200, 300]),
        "activation": st.sampled_from([*ACTIVATIONS] if i == 2 else [None, "relu", "linear"]),
        "use_bias": st.booleans(), "kernel_regularizer": REGULARIZER, "bias_regularizer": REGULARIZER,
        "trainable": st.booleans()})) for i in range(3)]
    configs[1].update(CHAIN_DEVIATIONS[deviation])  # the middle one: no two chainable layers left
    model = lamina.Sequential([layers.Input((200,)), *[layers.Dense(**c) for c in configs]])
    x = np.random.default_rng(0).standard_normal((1, 200)).astype("float32")
    model.predict(x, verbose=0)  # records the plan
    with torch.inference_mode():
        fused = model(torch.as_tensor(x)).numpy()
    assert len(chains) == (deviation == "none")
    h = torch.as_tensor(x).double()
    for layer in model.layers:
        bias = layer.bias.detach().double() if layer.use_bias else None
        h = F.linear(h, layer.kernel.detach().double(), bias)
        h = ACTIVATIONS[lamina.activations.serialize(layer.activation)](h)
    np.testing.assert_allclose(fused, h.numpy(), rtol=2e-5, atol=2e-6)


# ----------------------------------------------------------------------- the Dense step
STEP_DEVIATIONS = {
    "none": (None, {}), "dropout noise_shape": (layers.Dropout, {"noise_shape": (None, 1)}),
    "tanh inside": (layers.Dense, {"activation": "tanh"}),
    "kernel_regularizer": (layers.Dense, {"kernel_regularizer": "l2"}),
    "bias_regularizer": (layers.Dense, {"bias_regularizer": "l2"}),
    "activity_regularizer": (layers.Dense, {"activity_regularizer": "l2"}),
    "frozen": (layers.Dense, {"trainable": False}),
    "flatten channels_first": (layers.Flatten, {"data_format": "channels_first"}),
}


@pytest.mark.skipif(_dropout_kernel.library() is None, reason="no C compiler for dropout")
@pytest.mark.parametrize("deviation", STEP_DEVIATIONS)
@examples(2)
@given(data=st.data())
def test_dense_step_over_the_dense_dropout_and_flatten_config_spaces(deviation, data, monkeypatch):
    fused = []
    real = _dense_step.DenseStackStep.__call__
    monkeypatch.setattr(_dense_step.DenseStackStep, "__call__",
                        lambda self, x, y: fused.append(x.shape) or real(self, x, y))
    specs = [(layers.Flatten, {"data_format": "channels_last"})]
    for _ in range(data.draw(st.integers(1, 2))):
        specs.append((layers.Dropout, {"rate": data.draw(st.sampled_from([0.0, 0.1, 0.5])),
                                       "seed": data.draw(st.sampled_from([None, 3]))}))
        specs.append((layers.Dense, {"units": data.draw(st.sampled_from([4, 32])),
                                     "activation": data.draw(st.sampled_from([None, "relu"])),
                                     "use_bias": data.draw(st.booleans())}))
    logits = data.draw(st.booleans())
    specs.append((layers.Dense, {"units": 3, "activation": None if logits else "softmax",
                                 "use_bias": data.draw(st.booleans())}))
    kind, change = STEP_DEVIATIONS[deviation]
    if kind is not None:
        index = data.draw(st.sampled_from([i for i, (k, _) in enumerate(specs[:-1]) if k is kind]))
        specs[index] = (kind, {**specs[index][1], **change})

    def build():
        return lamina.Sequential([lamina.Input((6, 2)), *[kind(**kwargs) for kind, kwargs in specs]])

    loss = lamina.losses.SparseCategoricalCrossentropy(from_logits=logits)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x, y = rng.standard_normal((64, 6, 2)).astype("float32"), rng.integers(0, 3, 64)
    ours = train(build, x, y, "auto", loss=loss, epochs=1)
    assert len(fused) == (2 if deviation == "none" else 0)  # 64 samples, batches of 32
    assert_same_training(ours, train(build, x, y, False, loss=loss, epochs=1), atol=2e-6)


# ----------------------------------------------------------------------- the folded ReLU
# (BatchNormalization's options changed, the Activation's function, the Activation's options)
FOLD_DEVIATIONS = {"none": ({}, "relu", {}), "tanh": ({}, "tanh", {}),
                   "norm activity_regularizer": ({"activity_regularizer": "l2"}, "relu", {}),
                   "relu activity_regularizer": ({}, "relu", {"activity_regularizer": "l2"})}


def fit_fcn_block(config, seed):
    lamina.utils.set_random_seed(1)
    norm_config, name, activation_config = config
    model = lamina.Sequential([
        layers.Input((12, 3)), layers.Conv1D(4, 3, padding="same"),
        layers.BatchNormalization(**norm_config), layers.Activation(name, **activation_config),
        layers.GlobalAveragePooling1D(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=lamina.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((32, 12, 3)).astype("float32"), rng.integers(0, 3, 32)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    return model.get_weights(), history.history


@pytest.mark.skipif(norm_kernels._statistics_library() is None, reason="no C compiler for the kernels")
@pytest.mark.parametrize("deviation", FOLD_DEVIATIONS)
@examples(3)
@given(norm_config=st.fixed_dictionaries({
    "axis": st.sampled_from([-1, 1]), "momentum": st.sampled_from([0.99, 0.5]),
    "epsilon": st.sampled_from([1e-3, 1e-5]), "center": st.booleans(), "scale": st.booleans(),
    "beta_regularizer": REGULARIZER, "gamma_regularizer": REGULARIZER}), seed=st.integers(0, 2**16))
def test_folded_relu_over_the_batch_norm_and_activation_config_spaces(deviation, norm_config, seed):
    change, name, activation_config = FOLD_DEVIATIONS[deviation]
    config = ({**norm_config, **change}, name, activation_config)
    folds = []
    real = sequential.relu_folds_into
    sequential.relu_folds_into = lambda *a: folds.append(real(*a)) or folds[-1]
    try:
        folded = fit_fcn_block(config, seed)
        sequential.relu_folds_into = lambda *a: False
        separate = fit_fcn_block(config, seed)
    finally:
        sequential.relu_folds_into = real
    assert any(folds) is (deviation == "none")
    assert_same_training(folded, separate, atol=2e-6)
