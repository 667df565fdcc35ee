"""Dense's oneDNN matrix product (kernels/linear.py): outputs and every gradient against torch's
F.linear in float64, the route taken only where it applies, and a differentiable backward for
create_graph=True."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamina import layers
from lamina.kernels import linear as _linear
from tests.parity import assert_parity, keras

pytestmark = pytest.mark.usefixtures("generic_blas")  # the routes, on every CPU

onednn = pytest.mark.skipif(_linear._LINEAR is None or not torch.backends.mkldnn.is_available(),
                            reason="this torch build has no oneDNN matmul")


@pytest.fixture
def calls(count_calls):
    """The oneDNN products made."""
    return count_calls(_linear, "_LINEAR")


def big_dense(rng, shape=(32, 500), units=400, **kwargs):
    layer = layers.Dense(units, **kwargs)
    x = torch.as_tensor(rng.standard_normal(shape).astype("float32"))
    layer.build(tuple(x.shape))
    return layer, x


def float64_reference(layer, x, cotangent):
    """Output and gradients (input, kernel, bias) of the same layer in float64 through F.linear."""
    x64 = x.detach().double().requires_grad_()
    k64 = layer.kernel.detach().double().requires_grad_()
    b64 = layer.bias.detach().double().requires_grad_()
    y = F.linear(x64, k64, b64)
    grads = torch.autograd.grad(y, (x64, k64, b64), cotangent.double())
    return y.detach(), grads


@onednn
@pytest.mark.parametrize("shape", [(32, 500), (4, 8, 500)])
def test_training_product_and_gradients_match_float64(shape, calls, rng):
    layer, x = big_dense(rng, shape)
    x = x.requires_grad_()
    y = layer(x)
    cotangent = torch.randn(y.shape)
    gx, gk, gb = torch.autograd.grad(y, (x, layer.kernel, layer.bias), cotangent)
    assert len(calls) == 3  # forward, input gradient, kernel gradient
    y64, (gx64, gk64, gb64) = float64_reference(layer, x, cotangent)
    for ours, exact in ((y, y64), (gx, gx64), (gk, gk64), (gb, gb64)):
        torch.testing.assert_close(ours.double(), exact, rtol=1e-4, atol=1e-4)


@onednn
def test_frozen_kernel_and_constant_input_skip_their_products(calls, rng):
    layer, x = big_dense(rng)
    layer.kernel.requires_grad_(False)
    y = layer(x.requires_grad_())
    (gx,) = torch.autograd.grad(y.sum(), x)  # sum(): an expanded (stride 0) cotangent
    assert len(calls) == 2
    torch.testing.assert_close(gx, layer.kernel.sum(0).expand_as(x), rtol=1e-4, atol=1e-4)


@onednn
def test_inference_without_gradients_is_one_product(calls, rng):
    layer, x = big_dense(rng, activation="relu")
    with torch.inference_mode():
        y = layer(x)
    assert len(calls) == 1
    torch.testing.assert_close(y.double(), F.linear(x.double(), layer.kernel.double(),
                                                   layer.bias.double()).relu(), rtol=1e-4, atol=1e-4)


@onednn
def test_double_backward_is_differentiable(calls, rng):
    """create_graph=True (a gradient penalty) gets a backward built from differentiable ops."""
    layer, x = big_dense(rng, units=300)
    x = x.requires_grad_()
    (gx,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    (gk,) = torch.autograd.grad(gx.square().sum(), layer.kernel)
    x64 = x.detach().double().requires_grad_()
    k64 = layer.kernel.detach().double().requires_grad_()
    (gx64,) = torch.autograd.grad(F.linear(x64, k64, layer.bias.double()).square().sum(), x64,
                                  create_graph=True)
    (gk64,) = torch.autograd.grad(gx64.square().sum(), k64)
    torch.testing.assert_close(gk.double(), gk64, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("case", ["small", "float64", "autocast", "oneDNN off", "traced"])
def test_other_cases_take_torch_linear(case, calls, rng):
    layer, x = big_dense(rng)
    if case == "small":
        x = x[:2]
    elif case == "float64":
        layer.double()
        x = x.double()
    if case == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x).dtype == torch.bfloat16
    elif case == "oneDNN off":
        with torch.backends.mkldnn.flags(enabled=False):
            layer(x)
    elif case == "traced":  # the graph holds lamina's operator, which decides when it runs
        graph = torch.jit.trace(layer, (x,), check_trace=False).graph
        assert "mkldnn" not in str(graph) and "lamina::linear" in str(graph)
        calls.clear()
    else:
        layer(x)
    assert calls == []


@onednn
def test_large_dense_still_matches_keras(rng):
    x = rng.standard_normal((64, 300)).astype("float32")
    assert_parity(layers.Dense(200, activation="tanh"), keras.layers.Dense(200, activation="tanh"), x,
                  atol=1e-4, rtol=1e-4)


@onednn
def test_fit_steps_match_torch_linear_route(rng, monkeypatch):
    """Four SGD steps of an MLP through autograd (jit_compile=False: not the hand-derived Dense
    step) with the oneDNN products end where torch's F.linear route ends (SGD: an update linear in
    the gradients, so a wrong scale shows)."""
    import lamina

    x = rng.standard_normal((64, 300)).astype("float32")
    y = rng.integers(0, 5, 64)

    def train():
        lamina.utils.set_random_seed(3)
        model = lamina.Sequential([lamina.Input((300,)), layers.Dense(400, activation="relu"),
                                   layers.Dense(5, activation="softmax")])
        model.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                      jit_compile=False)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    ours = train()
    monkeypatch.setattr(_linear, "_LINEAR", None)
    theirs = train()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
