"""BatchNormalization followed by Activation("relu") in a Sequential: the ReLU folded into the
normalization's own passes (forward max(y, 0), backward masking dy where y <= 0) against torch's
batch_norm then relu in float64, and whole fits equal to the unfolded layers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers, tsc
from lamina.kernels import normalization as kernels
from lamina.models import _folding, sequential
from lamina.models import model as model_module

compiled = pytest.mark.skipif(kernels._statistics_library() is None, reason="no C compiler for the kernels")


@compiled
@pytest.mark.parametrize("shape, center, scale", [((16, 40, 24), True, True), ((64, 9), False, True),
                                                  ((8, 5, 6, 12), True, False)])
def test_folded_relu_matches_batch_norm_then_relu_in_float64(shape, center, scale, rng, monkeypatch):
    fused = []
    real = kernels._affine_rows
    monkeypatch.setattr(kernels, "_affine_rows",
                        lambda *a, relu=False: fused.append(relu) or real(*a, relu=relu))
    layer = layers.BatchNormalization(center=center, scale=scale)
    x = torch.as_tensor(rng.normal(0.3, 2.0, shape).astype("float32")).requires_grad_()
    layer.build(x.shape)
    c = shape[-1]
    with torch.no_grad():
        if scale:
            layer.gamma.copy_(torch.as_tensor(rng.uniform(-1.5, 2.0, c).astype("float32")))
        if center:
            layer.beta.copy_(torch.as_tensor(rng.standard_normal(c).astype("float32")))
    params = [p for p in (layer.gamma, layer.beta) if p is not None]
    y = layer(x, training=True, _relu=True)
    cotangent = torch.randn(shape)
    grads = torch.autograd.grad(y, [x, *params], cotangent)
    x64 = x.detach().double().requires_grad_()
    p64 = [p.detach().double().requires_grad_() for p in params]
    g64 = p64[0] if scale else None
    b64 = p64[-1] if center else None
    y64 = F.batch_norm(x64.reshape(-1, c), None, None, g64, b64, training=True, eps=1e-3).relu()
    grads64 = torch.autograd.grad(y64, [x64, *p64], cotangent.double().reshape(-1, c))
    torch.testing.assert_close(y.double().reshape(-1, c), y64, rtol=1e-5, atol=1e-5)
    for ours, exact in zip(grads, grads64):
        torch.testing.assert_close(ours.double().reshape(exact.shape), exact, rtol=1e-4, atol=1e-4)
    assert (y >= 0).all() and (y == 0).any()
    assert fused == [True]  # the ReLU ran inside the affine pass, not as a separate op


def fcn_like():
    return lamina.Sequential([lamina.Input((30, 2)), layers.Conv1D(16, 5, padding="same"),
                              layers.BatchNormalization(), layers.Activation("relu"),
                              layers.Conv1D(8, 3, padding="same"), layers.BatchNormalization(),
                              layers.Activation("relu"), layers.GlobalAveragePooling1D(),
                              layers.Dense(3, activation="softmax")])


def train(rng, build):
    lamina.utils.set_random_seed(1)
    model = build()
    model.compile(optimizer=lamina.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((48, 30, 2)).astype("float32")
    y = np.arange(48) % 3
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    return model.get_weights(), history.history["loss"], model.predict(x, verbose=0)


@compiled
@pytest.mark.parametrize("build", [fcn_like, lambda: tsc.fcn((30, 2), 3)], ids=["Sequential", "tsc.fcn"])
def test_fit_with_the_folded_relu_equals_the_separate_layers(build, monkeypatch):
    folds = []
    real = _folding.relu_folds_into

    def counted(*args):
        folds.append(real(*args))
        return folds[-1]

    for owner in (sequential, model_module):
        monkeypatch.setattr(owner, "relu_folds_into", counted)
    ours = train(np.random.default_rng(0), build)
    assert any(folds)
    for owner in (sequential, model_module):
        monkeypatch.setattr(owner, "relu_folds_into", lambda *a: False)
    theirs = train(np.random.default_rng(0), build)
    for a, b in zip(ours[0], theirs[0]):  # moving statistics included
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-6)


def test_functional_pairs_only_a_batch_norm_output_read_by_the_relu_alone():
    inp = lamina.Input((6,))
    bn = layers.BatchNormalization()(inp)
    relu = layers.Activation("relu")(bn)
    also = layers.Dense(2)(bn)  # a second reader of the BatchNorm's output
    model = lamina.Model(inp, [relu, also])
    assert _folding.relu_pairs(model._nodes, model._flat_outputs) == {}
    inp = lamina.Input((6,))
    single = lamina.Model(inp, layers.Activation("relu")(layers.BatchNormalization()(inp)))
    assert _folding.relu_pairs(single._nodes, single._flat_outputs) == {0: 1}


@pytest.mark.parametrize("case", ["tanh", "hooked activation", "inference"])
def test_relu_is_folded_only_where_nothing_would_notice(case, rng):
    bn, act = layers.BatchNormalization(), layers.Activation("tanh" if case == "tanh" else "relu")
    x = torch.randn(4, 6)
    if case == "hooked activation":
        act.register_forward_hook(lambda *a: None)
    training = case != "inference"
    assert _folding.relu_folds_into(bn, act, x, training) is False
    assert _folding.relu_folds_into(bn, layers.Activation("relu"), x, True) is True


@compiled
def test_a_copied_functional_model_runs_the_same_graph(rng):
    """A deep copy (its pairs are node positions) computes exactly what the original does."""
    import copy

    model = tsc.fcn((30, 2), 3)
    x = torch.as_tensor(rng.standard_normal((8, 30, 2)).astype("float32"))
    expected = model(x, training=True)
    twin = copy.deepcopy(model)
    del model
    torch.testing.assert_close(twin(x, training=True), expected)
    torch.testing.assert_close(twin(x, training=True), expected)
