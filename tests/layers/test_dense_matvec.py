"""Dense's small-batch inference loop (kernels/linear.py): products against F.linear in
float64 for every shape class the loop splits on (rows, units not a multiple of four, inputs not
a multiple of sixteen, bias absent, ReLU folded in), on one and two threads, and the route taken
only at inference, on few rows of float32 on the CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers
from lamina.kernels import linear as _linear
from lamina.kernels import linear as _matvec_kernel
from tests.parity import keras

pytestmark = pytest.mark.usefixtures("generic_blas")  # the routes, on every CPU

compiled = pytest.mark.skipif(_matvec_kernel.library() is None, reason="no C compiler")


@pytest.fixture
def calls(count_calls):
    """The loop's calls (the rows' shapes)."""
    return count_calls(_matvec_kernel, "small_linear")


def exact(x, kernel, bias, relu):
    y = F.linear(x.double(), kernel.double(), None if bias is None else bias.double())
    return torch.relu(y) if relu else y


@compiled
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows,inputs,units", [(1, 500, 500), (3, 131, 257), (16, 64, 1023),
                                               (2, 15, 4099), (1, 1, 40000), (5, 700, 2)])
@pytest.mark.parametrize("relu,with_bias", [(False, True), (True, True), (True, False)])
def test_products_match_float64(rows, inputs, units, relu, with_bias, threads, rng):
    torch.set_num_threads(threads)
    x = torch.as_tensor(rng.standard_normal((rows, inputs)).astype("float32"))
    kernel = torch.as_tensor(rng.standard_normal((units, inputs)).astype("float32"))
    bias = torch.as_tensor(rng.standard_normal(units).astype("float32")) if with_bias else None
    y = _matvec_kernel.small_linear(x, kernel, bias, relu)
    assert y.shape == (rows, units) and y.dtype == torch.float32
    # float32 sums of `inputs` terms of unit size: torch's own F.linear is off by as much.
    tolerance = 2e-6 * inputs ** 0.5 * 4
    torch.testing.assert_close(y.double(), exact(x, kernel, bias, relu), rtol=tolerance, atol=tolerance)
    if relu:
        assert (y >= 0).all()


@compiled
def test_non_contiguous_rows_are_read_as_their_values(rng):
    x = torch.as_tensor(rng.standard_normal((500, 3)).astype("float32")).t()  # (3, 500), strided
    kernel = torch.randn(600, 500)
    torch.testing.assert_close(_matvec_kernel.small_linear(x, kernel, None, False).double(),
                               exact(x, kernel, None, False), rtol=1e-4, atol=1e-4)


@compiled
@pytest.mark.parametrize("activation", ["relu", None, "softmax"])
def test_dense_at_inference_takes_the_loop_and_matches_keras(activation, calls, rng):
    x = rng.standard_normal((2, 300)).astype("float32")
    reference = keras.layers.Dense(500, activation=activation)
    expected = keras.ops.convert_to_numpy(reference(x))
    layer = layers.Dense(500, activation=activation)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    with torch.inference_mode():
        ours = layer(torch.as_tensor(x)).numpy()
    assert len(calls) == 1
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@compiled
def test_predict_of_one_sample_takes_the_loop(calls, rng):
    """A functional MLP (a Sequential would run its Dense layers as one chain from its second
    call on, models/_dense_chain.py): every predict runs the loop for each large layer."""
    x_in = layers.Input((64,))
    h = x_in
    for units in (500, 500, 500):
        h = layers.Dense(units, activation="relu")(h)
    model = lamina.Model(x_in, layers.Dense(10, activation="softmax")(h))
    x = rng.standard_normal((1, 64)).astype("float32")
    for _ in range(2):
        y = model.predict(x, verbose=0)
    assert len(calls) == 4  # the two 500 x 500 layers, twice; 64 x 500 and 500 x 10 are too small
    h = torch.as_tensor(x).double()
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    for layer in dense:
        h = F.linear(h, layer.kernel.detach().double(), layer.bias.detach().double())
        h = torch.relu(h) if layer is not dense[-1] else torch.softmax(h, -1)
    torch.testing.assert_close(torch.as_tensor(y).double(), h, rtol=1e-5, atol=1e-6)


@compiled
@pytest.mark.parametrize("case", ["grad", "float64", "many rows", "3d", "small kernel", "autocast",
                                  "traced"])
def test_other_cases_take_torch(case, calls, rng):
    """The loop runs for float32 2-D inputs of a few rows (with or without gradients, traced or
    not: the choice is made inside the operator, on real tensors); the rest take torch's."""
    layer = layers.Dense(500, activation="relu")
    x = torch.as_tensor(rng.standard_normal((1, 500)).astype("float32"))
    layer.build(tuple(x.shape))
    expected = None
    if case == "grad":  # gradients wanted: the product must be differentiable
        y = layer(x.requires_grad_())
        y.sum().backward()
        assert x.grad is not None
    elif case == "float64":
        layer.double()
        with torch.no_grad():
            y = layer(x.double())
    elif case == "many rows":
        with torch.no_grad():
            y = layer(x.repeat(_matvec_kernel.MAX_ROWS + 1, 1))
    elif case == "3d":
        with torch.no_grad():
            y = layer(x.unsqueeze(0))
    elif case == "small kernel":
        layer = layers.Dense(8)
        with torch.no_grad():
            y = layer(x)
    elif case == "autocast":
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        assert y.dtype == torch.bfloat16
    else:
        kernel, bias = layer.kernel.detach(), layer.bias.detach()
        with torch.no_grad():
            traced = torch.jit.trace(lambda t: _linear.linear(t, kernel, bias, True), x,
                                     check_trace=False)  # (its check reruns untraced)
            y = traced(x)
        expected = exact(x, kernel, bias, True)
    assert bool(calls) == (case in ("grad", "traced"))
    if expected is not None:
        torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)
