"""fit's hand-derived step for Dense/Dropout stacks (models/_dense_step.py) against autograd's
step: the same weights, losses and metrics after whole fits (SGD, whose update is linear in the
gradients, so the comparison is tight; Adam over a few steps), the step taken only where it
applies, and every excluded case left to autograd."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers, losses, tsc
from lamina.kernels import dropout as _dropout_kernel
from lamina.models import _dense_step

compiled = pytest.mark.skipif(_dropout_kernel.library() is None, reason="no C compiler for dropout")


@pytest.fixture
def fused_steps(monkeypatch):
    """How many batches took the hand-derived step."""
    made = []
    real = _dense_step.DenseStackStep.__call__
    monkeypatch.setattr(_dense_step.DenseStackStep, "__call__",
                        lambda self, x, y: made.append(x.shape) or real(self, x, y))
    return made


def mlp(features=20, hidden=300, classes=5, last="softmax", hidden_activation="relu", dropout=(0.1, 0.2),
        use_bias=True, seed=None):
    stack = [lamina.Input((features,))]
    for rate in dropout:
        stack += [layers.Dropout(rate, seed=seed), layers.Dense(hidden, activation=hidden_activation,
                                                                 use_bias=use_bias)]
    return lamina.Sequential([*stack, layers.Dense(classes, activation=last)])


def data(rng, n=96, features=20, classes=5, x_shape=None):
    x = rng.standard_normal((n, *(x_shape or (features,)))).astype("float32")
    return x, rng.integers(0, classes, n)


def train(build, x, y, jit_compile, optimizer=lambda: lamina.optimizers.SGD(0.05), loss=None, epochs=2,
          **fit_kwargs):
    lamina.utils.set_random_seed(7)
    model = build()
    model.compile(optimizer=optimizer(), loss=loss or "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, **fit_kwargs)
    return model.get_weights(), history.history


def assert_same_training(ours, theirs, atol=1e-6):
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    assert ours[1].keys() == theirs[1].keys()
    for key in ours[1]:
        np.testing.assert_allclose(ours[1][key], theirs[1][key], rtol=1e-6, atol=1e-6, err_msg=key)


CASES = {
    "relu stack with dropout": dict(build=lambda: mlp()),
    "logits output": dict(build=lambda: mlp(last=None),
                          loss=lambda: losses.SparseCategoricalCrossentropy(from_logits=True)),
    "no dropout, no bias, linear hidden": dict(build=lambda: mlp(dropout=(0.0, 0.0), use_bias=False,
                                                                 hidden_activation=None)),
    "seeded dropout, small layers": dict(build=lambda: mlp(hidden=16, dropout=(0.5, 0.3, 0.1), seed=3)),
    "functional chain with Flatten (lamina.tsc.mlp)": dict(
        build=lambda: tsc.mlp((10, 2), 5), x_shape=(10, 2)),
    "consecutive dense": dict(build=lambda: lamina.Sequential([
        lamina.Input((20,)), layers.Dense(64, activation="relu"), layers.Dense(64, activation="relu"),
        layers.Dropout(0.25), layers.Dense(5, activation="softmax")])),
}


@compiled
@pytest.mark.parametrize("case", CASES)
def test_fit_matches_autograd_step(case, fused_steps, rng):
    spec = CASES[case]
    x, y = data(rng, x_shape=spec.get("x_shape"))
    loss = spec.get("loss", lambda: None)
    ours = train(spec["build"], x, y, "auto", loss=loss())
    assert len(fused_steps) == 2 * 3
    theirs = train(spec["build"], x, y, False, loss=loss())
    assert len(fused_steps) == 2 * 3
    assert_same_training(ours, theirs)


@compiled
def test_labels_as_float_columns_and_adam(fused_steps, rng):
    """(n, 1) float labels, as Keras allows; Adam, whose normalised update amplifies rounding in
    near-zero gradients over long runs, compared over three steps."""
    x, y = data(rng)
    column = y.astype("float32")[:, None]
    adam = lambda: lamina.optimizers.Adam(1e-3)  # noqa: E731
    ours = train(mlp, x, column, "auto", optimizer=adam, epochs=1)
    assert len(fused_steps) == 3
    theirs = train(mlp, x, column, False, optimizer=adam, epochs=1)
    assert_same_training(ours, theirs, atol=1e-5)


def _regularized():
    return lamina.Sequential([lamina.Input((20,)), layers.Dense(8, kernel_regularizer="l2"),
                              layers.Dense(5, activation="softmax")])


def _frozen():
    model = mlp(hidden=8)
    model.layers[1].trainable = False
    return model


def _hooked():
    model = mlp(hidden=8)
    model.layers[1].register_forward_hook(lambda *a: None)
    return model


def _backward_pre_hooked():
    model = mlp(hidden=8)
    model.layers[1].register_full_backward_pre_hook(lambda *a: None)
    return model


def _branching():
    inp = lamina.Input((20,))
    h = layers.Dense(8, activation="relu")(inp)
    out = layers.Dense(5, activation="softmax")(layers.Concatenate()([h, inp]))
    return lamina.Model(inp, out)


def _shared_layer():
    inp = lamina.Input((8,))
    shared = layers.Dense(8, activation="relu")
    return lamina.Model(inp, layers.Dense(5, activation="softmax")(shared(shared(inp))))


def _hooked_flatten():
    model = tsc.mlp((10, 2), 5)
    model.get_layer("flatten").register_forward_hook(lambda *a: None)
    return model


FALLBACKS = {
    "hook on the Flatten": dict(build=_hooked_flatten, x_shape=(10, 2)),
    "functional branches": dict(build=_branching),
    "layer called twice": dict(build=_shared_layer, x_shape=(8,)),
    "channels_first flatten": dict(build=lambda: lamina.Sequential([
        lamina.Input((4, 5)), layers.Flatten(data_format="channels_first"),
        layers.Dense(5, activation="softmax")]), x_shape=(4, 5)),
    "regularizer": dict(build=_regularized),
    "batch norm": dict(build=lambda: lamina.Sequential([lamina.Input((20,)), layers.Dense(8),
                                                       layers.BatchNormalization(),
                                                       layers.Dense(5, activation="softmax")])),
    "activation layer": dict(build=lambda: lamina.Sequential([lamina.Input((20,)), layers.Dense(8),
                                                             layers.Activation("relu"),
                                                             layers.Dense(5, activation="softmax")])),
    "tanh": dict(build=lambda: mlp(hidden=8, hidden_activation="tanh")),
    "frozen layer": dict(build=_frozen),
    "forward hook": dict(build=_hooked),
    "backward pre-hook": dict(build=_backward_pre_hooked),
    "one-hot loss": dict(build=lambda: mlp(hidden=8), loss="categorical_crossentropy", one_hot=True),
    "ignore_class": dict(build=lambda: mlp(hidden=8),
                         loss=losses.SparseCategoricalCrossentropy(ignore_class=0)),
    "sample weights": dict(build=lambda: mlp(hidden=8), sample_weight=True),
    "class weights": dict(build=lambda: mlp(hidden=8), class_weight={0: 2.0}),
    "jit_compile=False": dict(build=lambda: mlp(hidden=8), jit_compile=False),
}


@pytest.mark.parametrize("case", FALLBACKS)
def test_other_models_and_batches_take_autograd_step(case, fused_steps, rng):
    spec = FALLBACKS[case]
    x, y = data(rng, x_shape=spec.get("x_shape"))
    targets = np.eye(5, dtype="float32")[y] if spec.get("one_hot") else y
    fit_kwargs = {}
    if spec.get("sample_weight"):
        fit_kwargs["sample_weight"] = np.ones(len(y), "float32")
    if "class_weight" in spec:
        fit_kwargs["class_weight"] = spec["class_weight"]
    weights, history = train(spec["build"], x, targets, spec.get("jit_compile", "auto"),
                             loss=spec.get("loss"), epochs=1, **fit_kwargs)
    assert fused_steps == []
    assert np.isfinite(history["loss"]).all()


def test_jit_compile_takes_only_keras_values():
    model = mlp(hidden=8)
    with pytest.raises(ValueError, match="jit_compile"):
        model.compile(loss="sparse_categorical_crossentropy", jit_compile="xla")


@compiled
def test_fit_matches_a_plain_torch_loop(fused_steps, rng):
    """An independent oracle: torch's nn.Linear/ReLU stack, cross-entropy and SGD over the same
    batches, from the same weights, ends where the hand-derived step ends."""
    x, y = data(rng)
    ours = train(lambda: mlp(dropout=(0.0, 0.0)), x, y, "auto", shuffle=False)
    assert len(fused_steps) == 2 * 3
    lamina.utils.set_random_seed(7)
    model = mlp(dropout=(0.0, 0.0))
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    linears = []
    for layer in dense:
        linear = torch.nn.Linear(*layer.kernel.shape[::-1])
        with torch.no_grad():
            linear.weight.copy_(layer.kernel)
            linear.bias.copy_(layer.bias)
        linears.append(linear)
    net = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(), linears[2])
    sgd = torch.optim.SGD(net.parameters(), lr=0.05)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(2):
        for i in range(0, len(y), 32):
            sgd.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[i:i + 32]), yt[i:i + 32]).backward()
            sgd.step()
    expected = [t for linear in linears for t in (linear.weight.detach().T, linear.bias.detach())]
    for got, want in zip(ours[0], expected):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)
