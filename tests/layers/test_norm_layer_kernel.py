"""LayerNormalization's fused CPU loops (kernels/normalization.py): outputs and every
gradient against torch's F.layer_norm in float64, on one and on two threads, with gamma or beta
absent, on constant rows, and the route taken only where it applies."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamina import layers
from lamina.kernels import normalization as kernels
from tests.parity import assert_parity, keras

compiled = pytest.mark.skipif(kernels._layer_norm_library() is None, reason="no C compiler for the kernel")


@pytest.fixture
def runs(count_calls):
    return count_calls(kernels, "_layer_norm_rows")


def random_layer(rng, shape, **kwargs):
    layer = layers.LayerNormalization(epsilon=1e-3, **kwargs)
    layer.build(shape)
    c = shape[-1]
    with torch.no_grad():
        if layer.gamma is not None:
            layer.gamma.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, c).astype("float32")))
        if layer.beta is not None:
            layer.beta.copy_(torch.as_tensor(rng.standard_normal(c).astype("float32")))
    return layer


def check_against_float64(layer, x, cotangent):
    x = x.requires_grad_()
    params = [p for p in (layer.gamma, layer.beta) if p is not None]
    y = layer(x)
    grads = torch.autograd.grad(y, [x, *params], cotangent)
    x64 = x.detach().double().requires_grad_()
    p64 = [p.detach().double().requires_grad_() for p in params]
    g64 = p64[0] if layer.gamma is not None else None
    b64 = p64[-1] if layer.beta is not None else None
    y64 = F.layer_norm(x64, (x.shape[-1],), g64, b64, 1e-3)
    grads64 = torch.autograd.grad(y64, [x64, *p64], cotangent.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0].double(), grads64[0], rtol=1e-4, atol=1e-4)
    # gamma's and beta's gradients sum over every row (32768 here) in float32: ~1e-6 relative
    # of a sum of size ~sqrt(rows).
    for ours, exact in zip(grads[1:], grads64[1:]):
        torch.testing.assert_close(ours.double(), exact, rtol=1e-4, atol=1e-3)


@compiled
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(32, 1024, 64), (4, 16, 16, 72), (40, 1000)])
def test_output_and_gradients_match_float64(shape, threads, runs, rng):
    torch.set_num_threads(threads)
    layer = random_layer(rng, shape)
    x = torch.as_tensor(rng.normal(3.0, 2.0, shape).astype("float32"))
    check_against_float64(layer, x, torch.randn(shape))
    assert len(runs) == 1


@compiled
@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_without_center_or_scale(center, scale, runs, rng):
    shape = (16, 40, 64)
    layer = random_layer(rng, shape, center=center, scale=scale)
    x = torch.as_tensor(rng.standard_normal(shape).astype("float32"))
    check_against_float64(layer, x, torch.randn(shape))
    assert len(runs) == 1


@compiled
def test_constant_rows_give_beta_and_finite_gradients(runs, rng):
    shape = (64, 8, 64)
    layer = random_layer(rng, shape)
    x = torch.full(shape, 2.5, requires_grad=True)
    y = layer(x)
    torch.testing.assert_close(y, layer.beta.detach().expand(shape))
    y.backward(torch.randn(shape))
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.gamma.grad).all()
    assert len(runs) == 1


@compiled
def test_matches_keras_at_a_large_size(rng):
    x = rng.standard_normal((8, 64, 96)).astype("float32")
    assert_parity(layers.LayerNormalization(), keras.layers.LayerNormalization(), x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["small", "strided", "float64", "two axes"])
def test_other_cases_take_torch_layer_norm(case, runs, rng):
    """Small or float64 inputs take torch's layer_norm; a strided input (copied by the layer's
    view) and two trailing axes (merged into one by the plan) take the loop, with the same values."""
    x = torch.as_tensor(rng.standard_normal((16, 64, 64)).astype("float32"))
    layer = layers.LayerNormalization(axis=[-2, -1] if case == "two axes" else -1)
    if case == "small":
        x = x[:2, :4]
    elif case == "strided":
        x = x.transpose(0, 1)
    elif case == "float64":
        layer.build(x.shape)
        layer.double()
        x = x.double()
    y = layer(x)
    normalized = x.shape[-2:] if case == "two axes" else x.shape[-1:]
    expected = F.layer_norm(x.double(), tuple(normalized), eps=1e-3)
    np.testing.assert_allclose(y.detach().double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert len(runs) == (1 if case in ("strided", "two axes") else 0)
