"""LSTM inference through lamina's compiled loop (kernels/recurrent.py) against
torch's nn.LSTM with the same weights, the route taken only where it applies."""

import numpy as np
import pytest
import torch

from lamina import layers
from lamina.kernels import recurrent as _lstm_kernel

compiled = pytest.mark.skipif(_lstm_kernel.inference_library() is None, reason="no C compiler for the kernel")


@pytest.fixture
def runs(count_calls):
    """The compiled loop's calls."""
    return count_calls(_lstm_kernel, "_inference_loop")


def torch_twin(layer):
    """torch's nn.LSTM with the layer's weights (one Keras bias as bias_ih, bias_hh zero)."""
    twin = torch.nn.LSTM(layer.kernel.shape[1], layer.units, batch_first=True)
    with torch.no_grad():
        twin.weight_ih_l0.copy_(layer.kernel)
        twin.weight_hh_l0.copy_(layer.recurrent_kernel)
        twin.bias_ih_l0.copy_(layer.bias)
        twin.bias_hh_l0.zero_()
    return twin


@compiled
@pytest.mark.parametrize("batch, steps, features, units", [(1, 100, 8, 64), (2, 7, 3, 5), (1, 1, 4, 128)])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_sequences_and_states_match_torch_lstm(batch, steps, features, units, go_backwards, runs, rng):
    layer = layers.LSTM(units, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = torch.as_tensor(rng.standard_normal((batch, steps, features)).astype("float32"))
    h0 = torch.as_tensor(rng.standard_normal((batch, units)).astype("float32"))
    c0 = torch.as_tensor(rng.standard_normal((batch, units)).astype("float32"))
    layer(x)
    given = (h0.clone(), c0.clone())
    with torch.no_grad():
        layer.bias.copy_(torch.as_tensor(rng.standard_normal(4 * units).astype("float32")))
        sequence, h, c = layer(x, initial_state=[h0, c0])
        expected, (h_t, c_t) = torch_twin(layer)(x.flip(1) if go_backwards else x,
                                                 (h0.unsqueeze(0), c0.unsqueeze(0)))
    assert len(runs) == 1
    torch.testing.assert_close(sequence, expected, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(h, h_t[0], rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(c, c_t[0], rtol=1e-5, atol=2e-6)
    torch.testing.assert_close((h0, c0), given, rtol=0, atol=0)  # the initial states are not written to


@compiled
def test_last_output_and_saturated_gates(runs, rng):
    """return_sequences=False gives the last h; inputs large enough to saturate every gate
    (exp over/underflow territory) stay finite and match."""
    layer = layers.LSTM(16, use_bias=False)
    x = torch.as_tensor(rng.standard_normal((1, 20, 3)).astype("float32")) * 200
    layer(x)
    twin = torch.nn.LSTM(3, 16, batch_first=True, bias=False)
    with torch.no_grad():
        twin.weight_ih_l0.copy_(layer.kernel)
        twin.weight_hh_l0.copy_(layer.recurrent_kernel)
        out = layer(x)
        expected = twin(x)[1][0][0]
    assert len(runs) == 1 and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=2e-6)


@compiled
def test_stateful_predict_carries_the_states(runs, rng):
    """A stateful LSTM in predict(): two calls through the loop equal one call on both halves."""
    import lamina

    model = lamina.Sequential([lamina.Input((10, 4), batch_size=1), layers.LSTM(8, stateful=True)])
    x = rng.standard_normal((1, 20, 4)).astype("float32")
    model.predict(x[:, :10], verbose=0)
    second = model.predict(x[:, 10:], verbose=0)
    layer = model.layers[0]
    with torch.no_grad():
        _, (h, _) = torch_twin(layer)(torch.as_tensor(x))
    assert len(runs) >= 2
    np.testing.assert_allclose(second, h[0].numpy(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("case", ["gradients", "wide", "float64", "activation"])
def test_other_cases_take_torch_kernel(case, runs, rng):
    units = 256 if case == "wide" else 8
    layer = layers.LSTM(units, activation="relu" if case == "activation" else "tanh")
    x = torch.as_tensor(rng.standard_normal((1, 5, 3)).astype("float32"))
    if case == "float64":
        layer.build((1, 5, 3))
        layer.double()
        x = x.double()
    if case == "gradients":
        layer(x.requires_grad_())
    else:
        with torch.no_grad():
            layer(x)
    assert runs == []


@compiled
def test_float64_default_dtype_keeps_float32_buffers(runs, rng):
    """The loop's buffers follow the input's dtype, not torch's default."""
    layer = layers.LSTM(8, return_sequences=True)
    x = torch.as_tensor(rng.standard_normal((1, 6, 3)).astype("float32"))
    layer(x)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            out = layer(x)
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        expected = torch_twin(layer)(x)[0]
    assert out.dtype == torch.float32 and len(runs) == 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=2e-6)
