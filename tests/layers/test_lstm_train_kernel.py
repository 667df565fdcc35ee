"""LSTM training through lamina's compiled loops (kernels/recurrent.py): outputs
and every gradient against torch's LSTM in float64, through the layer (sequences, states,
go_backwards, no bias, dropout), whole fits against torch's kernel's, and the route taken only
where it applies."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.kernels import recurrent as _lstm_train_kernel

compiled = pytest.mark.skipif(_lstm_train_kernel.train_library() is None, reason="no C compiler")


@pytest.fixture
def runs(count_calls):
    """The compiled training loop's calls."""
    return count_calls(_lstm_train_kernel, "_TRAIN")


def float64_lstm(x, w_ih, w_hh, bias, h0, c0):
    """torch's LSTM in float64 on copies that want gradients: (sequence, h, c, leaves)."""
    leaves = [t.detach().double().requires_grad_() for t in (x, w_ih, w_hh, h0, c0)]
    bias64 = None if bias is None else bias.detach().double().requires_grad_()
    x64, ih, hh, h064, c064 = leaves
    params = [ih, hh] if bias64 is None else [ih, hh, bias64, torch.zeros_like(bias64)]
    seq, h, c = torch.lstm(x64, (h064[None], c064[None]), params, bias64 is not None, 1, 0.0, True,
                           False, True)
    return seq, h[0], c[0], [x64, ih, hh, bias64, h064, c064]


@compiled
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch, steps, features, units", [(32, 30, 8, 64), (3, 7, 5, 32),
                                                            (1, 1, 1, 128), (5, 12, 17, 96)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_outputs_and_every_gradient_match_float64(batch, steps, features, units, with_bias, threads,
                                                  rng):
    torch.set_num_threads(threads)

    def tensor(*shape, scale=1.0):
        return torch.as_tensor(rng.standard_normal(shape).astype("float32") * scale).requires_grad_()

    x, h0, c0 = tensor(batch, steps, features), tensor(batch, units), tensor(batch, units)
    w_ih, w_hh = tensor(4 * units, features, scale=0.3), tensor(4 * units, units, scale=0.2)
    bias = tensor(4 * units) if with_bias else None
    seq, (h, c) = _lstm_train_kernel.lstm(x, [w_ih, w_hh, bias], [h0, c0])
    cotangents = [torch.as_tensor(rng.standard_normal(t.shape).astype("float32")) for t in (seq, h, c)]
    inputs = [t for t in (x, w_ih, w_hh, bias, h0, c0) if t is not None]
    grads = torch.autograd.grad(sum((t * g).sum() for t, g in zip((seq, h, c), cotangents)), inputs)
    seq64, h64, c64, leaves = float64_lstm(x, w_ih, w_hh, bias, h0, c0)
    leaves = [t for t in leaves if t is not None]
    exact = torch.autograd.grad(sum((t * g.double()).sum() for t, g in zip((seq64, h64, c64), cotangents)),
                                leaves)
    for ours, reference in zip((seq, h, c, *grads), (seq64, h64, c64, *exact)):
        scale = reference.abs().max().item() + 1
        torch.testing.assert_close(ours.double(), reference, rtol=0, atol=2e-5 * scale)


@compiled
def test_only_the_final_states_wanted(rng):
    """No gradient for the sequence (the layer without return_sequences): h's alone."""
    x = torch.as_tensor(rng.standard_normal((4, 9, 3)).astype("float32"))
    w_ih = torch.as_tensor(rng.standard_normal((128, 3)).astype("float32") * 0.3).requires_grad_()
    w_hh = torch.as_tensor(rng.standard_normal((128, 32)).astype("float32") * 0.2).requires_grad_()
    zeros = torch.zeros(4, 32)
    _, (h, _) = _lstm_train_kernel.lstm(x, [w_ih, w_hh, None], [zeros, zeros])
    ours = torch.autograd.grad(h.sum(), (w_ih, w_hh))
    _, h64, _, leaves = float64_lstm(x, w_ih, w_hh, None, zeros, zeros)
    exact = torch.autograd.grad(h64.sum(), leaves[1:3])
    for a, b in zip(ours, exact):
        torch.testing.assert_close(a.double(), b, rtol=0, atol=1e-5 * (b.abs().max().item() + 1))


def _twin_gradients(layer, x, **call):
    """The layer's output and weight gradients with lamina's loop, then with torch's kernel."""
    results = []
    for use_loop in (True, False):
        for w in layer.parameters():
            w.grad = None
        if use_loop:
            out = layer(x, **call)
        else:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_lstm_train_kernel, "train_library", lambda: None)
                out = layer(x, **call)
        out = out[0] if isinstance(out, (list, tuple)) else out
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        results.append((out.detach(), [w.grad.clone() for w in layer.parameters()]))
    return results


@compiled
@pytest.mark.parametrize("options", [dict(return_sequences=True), dict(go_backwards=True),
                                     dict(use_bias=False, return_state=True), dict(dropout=0.0)])
def test_the_layer_in_training_matches_torch_kernel(options, runs, rng):
    layer = layers.LSTM(32, **options)
    x = torch.as_tensor(rng.standard_normal((6, 11, 4)).astype("float32"))
    layer(x)
    with torch.no_grad():
        layer.recurrent_kernel.mul_(3)  # states that matter
    runs.clear()
    (ours, our_grads), (theirs, their_grads) = _twin_gradients(layer, x)
    assert len(runs) == 1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for a, b in zip(our_grads, their_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@compiled
def test_fit_matches_torch_kernel_fit(rng):
    x = rng.standard_normal((64, 20, 5)).astype("float32")
    y = rng.integers(0, 3, 64)
    weights = None
    histories, finals = [], []
    for use_loop in (True, False):
        lamina.utils.set_random_seed(0)
        model = lamina.Sequential([layers.Input((20, 5)), layers.LSTM(64),
                                   layers.Dense(3, activation="softmax")])
        model.compile(optimizer=lamina.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        with pytest.MonkeyPatch.context() as patch:
            if not use_loop:
                patch.setattr(_lstm_train_kernel, "train_library", lambda: None)
            histories.append(model.fit(x, y, batch_size=16, epochs=2, shuffle=False,
                                       verbose=0).history["loss"])
        finals.append(model.get_weights())
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for a, b in zip(*finals):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@compiled
@pytest.mark.parametrize("case", ["inference", "units", "wide, few sequences", "float64", "mask",
                                  "recurrent dropout", "autocast"])
def test_other_cases_take_torch_kernel(case, runs, rng):
    units = {"units": 48, "wide, few sequences": 128}.get(case, 32)
    options = {"recurrent_dropout": 0.5} if case == "recurrent dropout" else {}
    layer = layers.LSTM(units, **options)
    x = torch.as_tensor(rng.standard_normal((3, 6, 4)).astype("float32"))
    with torch.no_grad():
        layer(x)  # built
    call = {}
    if case == "inference":
        with torch.no_grad():
            layer(x)
    elif case == "float64":
        layer.double()
        x = x.double()
    elif case == "mask":
        call["mask"] = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [False] + [True] * 5])
    if case == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x).float().sum().backward()
    elif case == "recurrent dropout":
        layer(x, training=True).sum().backward()
    elif case != "inference":
        layer(x, **call).sum().backward()
    assert runs == []


@compiled
def test_create_graph_gives_a_differentiable_backward(runs, rng):
    """A gradient penalty through the layer: the second derivative as torch's kernel gives it."""
    layer = layers.LSTM(32)
    x0 = torch.as_tensor(rng.standard_normal((3, 5, 4)).astype("float32"))
    with torch.no_grad():
        layer(x0)
    results = []
    for use_loop in (True, False):
        x = x0.clone().requires_grad_()
        for w in layer.parameters():
            w.grad = None
        with pytest.MonkeyPatch.context() as patch:
            if not use_loop:
                patch.setattr(_lstm_train_kernel, "train_library", lambda: None)
            (gx,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
            gx.square().sum().backward()
        results.append([gx.detach()] + [w.grad.clone() for w in layer.parameters()])
    assert len(runs) == 1
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
