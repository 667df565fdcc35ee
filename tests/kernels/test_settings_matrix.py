"""Every speed route's parity under the global torch settings a user may set.

Each case builds a layer whose call runs lamina's operators (compiled loops for float32 CPU
tensors, torch's ops otherwise), calls it forward and backward under one setting, and compares
the output and the gradients with the same formula restated in torch.nn.functional in float64.
The settings: default dtype float64 (the outputs of loops that allocated in the default dtype
were garbage), deterministic algorithms, 1/2/3 threads, inference_mode, non-contiguous and
strided inputs, bf16 autocast, torch.compile (one small case per op family) and vmap.

The quick matrix runs in CI; `LAMINA_LONG_TESTS=1` adds larger inputs (several threads' worth of
work per loop) and compiles every case.
"""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
import torch.nn.functional as F

from lamina import layers
from lamina.layers.base import state_updates_disabled

LONG = os.environ.get("LAMINA_LONG_TESTS") == "1"
# Big enough for the loops to share work between threads in the long mode.
BATCH, STEPS, CHANNELS = (32, 64, 48) if LONG else (6, 10, 8)


def _params(layer):
    return [p for p in layer.parameters() if p.requires_grad]


def _channels_first(fn):
    """An oracle on (batch, channels, ...) applied to channels_last x."""
    return lambda x, *a: fn(x.movedim(-1, 1), *a).movedim(1, -1)


def _filled(layer, x):
    """The layer built, with non-trivial weights and moving statistics, so a mix-up of them shows."""
    layer([x, _class_ids(x)]) if isinstance(layer, layers.ConditionalBatchNormalization) else layer(x)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in [*layer.named_parameters(), *layer.named_buffers()]:
            if t.is_floating_point():
                positive = "gamma" in name or "variance" in name
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if positive
                        else torch.randn(t.shape, generator=g) * 0.3)
    return layer


def _bn_oracle(training):
    def oracle(x, w, layer):
        moving = (None, None) if training else (w["moving_mean"], w["moving_variance"])
        return _channels_first(lambda t: F.batch_norm(t, *moving, w["gamma"], w["beta"], training=training,
                                                      eps=layer.epsilon))(x)
    return oracle


def _layer_norm_oracle(x, w, layer):
    return F.layer_norm(x, x.shape[-1:], w["gamma"], w["beta"], layer.epsilon)


def _instance_oracle(x, w, layer):
    return _channels_first(lambda t: F.instance_norm(t, weight=w["gamma"], bias=w["beta"],
                                                     eps=layer.epsilon))(x)


def _group_oracle(x, w, layer):
    return _channels_first(lambda t: F.group_norm(t, layer.groups, w["gamma"], w["beta"], layer.epsilon))(x)


def _switchable_oracle(training):
    """The published algorithm (Luo et al., 2018) with biased variances, channels last."""
    def oracle(x, w, layer):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        mean_in, var_in = flat.mean(1, keepdim=True), flat.var(1, keepdim=True, correction=0)
        mean_ln = mean_in.mean(2, keepdim=True)
        var_ln = (var_in + mean_in.square()).mean(2, keepdim=True) - mean_ln.square()
        if training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = (var_in + mean_in.square()).mean(0, keepdim=True) - mean_bn.square()
        else:
            mean_bn, var_bn = w["moving_mean"].reshape(1, 1, -1), w["moving_variance"].reshape(1, 1, -1)
        wm, wv = torch.softmax(w["mean_weights"], 0), torch.softmax(w["variance_weights"], 0)
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
        var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
        return ((flat - mean) / torch.sqrt(var + layer.epsilon) * w["gamma"] + w["beta"]).reshape(x.shape)
    return oracle


def _conditional_oracle(x, w, layer):
    ids = _class_ids(x)
    y = _channels_first(lambda t: F.batch_norm(t, None, None, training=True, eps=layer.epsilon))(x)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return y * w["gamma"][ids].reshape(shape) + w["beta"][ids].reshape(shape)


def _class_ids(x):
    return torch.arange(x.shape[0]) % 3


def _dense_oracle(x, w, layer):
    return F.linear(x, w["kernel"], w["bias"]).relu()


def _lstm_oracle(x, w, layer):
    zeros = x.new_zeros(1, x.shape[0], w["recurrent_kernel"].shape[1])
    params = [w["kernel"], w["recurrent_kernel"], w["bias"], torch.zeros_like(w["bias"])]
    return torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, False, False, True)[0]


def _gru_oracle(x, w, layer):
    zeros = x.new_zeros(1, x.shape[0], w["recurrent_kernel"].shape[1])
    params = [w["kernel"], w["recurrent_kernel"], w["bias"][0], w["bias"][1]]
    return torch.gru(x, zeros, params, True, 1, 0.0, False, False, True)[0]


def _conv_oracle(x, w, layer=None):
    """A stride-1 Conv1D with Keras' "same" padding (the odd one at the end)."""
    window = w["kernel"].shape[-1] - 1
    padding = (window // 2, window - window // 2)
    return _channels_first(lambda t: F.conv1d(F.pad(t, padding), w["kernel"], w["bias"]))(x)


CASES = {
    "BN train": (lambda: layers.BatchNormalization(), {"training": True}, _bn_oracle(True)),
    "BN eval": (lambda: layers.BatchNormalization(), {"training": False}, _bn_oracle(False)),
    "LN": (lambda: layers.LayerNormalization(), {}, _layer_norm_oracle),
    "IN": (lambda: layers.InstanceNormalization(), {}, _instance_oracle),
    "GN": (lambda: layers.GroupNormalization(groups=4), {}, _group_oracle),
    "SN train": (lambda: layers.SwitchableNormalization(), {"training": True}, _switchable_oracle(True)),
    "SN eval": (lambda: layers.SwitchableNormalization(), {"training": False}, _switchable_oracle(False)),
    "CBN train": (lambda: layers.ConditionalBatchNormalization(num_classes=3), {"training": True},
                  _conditional_oracle),
    "Dense": (lambda: layers.Dense(CHANNELS + 4, activation="relu"), {}, _dense_oracle),
    "LSTM": (lambda: layers.LSTM(CHANNELS, return_sequences=True), {}, _lstm_oracle),
    "GRU": (lambda: layers.GRU(CHANNELS, return_sequences=True), {}, _gru_oracle),
    "Conv1D": (lambda: layers.Conv1D(CHANNELS, 3, padding="same"), {}, _conv_oracle),
}


# --- Settings: each a context manager that sets a global torch setting and restores it.

@contextlib.contextmanager
def _setting(get, put, value):
    previous = get()
    put(value)
    try:
        yield
    finally:
        put(previous)


def _default_dtype():
    return _setting(torch.get_default_dtype, torch.set_default_dtype, torch.float64)


def _deterministic():
    return _setting(torch.are_deterministic_algorithms_enabled, torch.use_deterministic_algorithms, True)


def _threads(n):
    return _setting(torch.get_num_threads, torch.set_num_threads, n)


SETTINGS = {
    "default float64": _default_dtype,
    "deterministic": _deterministic,
    "1 thread": lambda: _threads(1),
    "2 threads": lambda: _threads(2),
    "3 threads": lambda: _threads(3),
    "inference_mode": torch.inference_mode,
    "non-contiguous": contextlib.nullcontext,
    "strided": contextlib.nullcontext,
    "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    "vmap": contextlib.nullcontext,
}
# One small case per op family under torch.compile (each compile takes seconds); all in the long mode.
COMPILED = set(CASES) if LONG else {"BN train", "LN", "SN train", "Dense", "LSTM"}


def _input(setting):
    g = torch.Generator().manual_seed(0)
    if setting == "strided":
        return torch.randn(BATCH, STEPS * 2, CHANNELS, generator=g)[:, ::2] * 2 + 0.5
    x = torch.randn(BATCH, STEPS, CHANNELS, generator=g) * 2 + 0.5
    if setting == "vmap":  # two batches, mapped over
        return torch.stack([x, x.flip(0) * 0.5 - 1])
    return x


def _forward(name, layer, kwargs, setting):
    def call(x):
        return layer([x, _class_ids(x)], **kwargs) if name.startswith("CBN") else layer(x, **kwargs)

    if setting == "vmap":
        return lambda x: torch.func.vmap(call)(x)
    if setting == "torch.compile":
        return torch.compile(call)
    return call


@pytest.mark.parametrize("setting", [*SETTINGS, "torch.compile"])
@pytest.mark.parametrize("name", list(CASES))
def test_route_matches_the_torch_formula(name, setting):
    if setting == "torch.compile" and name not in COMPILED:
        pytest.skip("compiled in the long mode (LAMINA_LONG_TESTS=1)")
    make, kwargs, oracle = CASES[name]
    x = _input(setting)
    differentiate = setting != "inference_mode"
    with SETTINGS.get(setting, contextlib.nullcontext)():
        layer = _filled(make(), x[0] if setting == "vmap" else x)
        torch.clear_autocast_cache()  # autocast's copies of the weights from before they were filled
        params = [p for p in layer.parameters() if p.requires_grad]
        leaf = x.clone().requires_grad_(differentiate)
        # A non-contiguous view of the same values (channels strided by the batch).
        given = leaf.transpose(0, 1).contiguous().transpose(0, 1) if setting == "non-contiguous" else leaf
        with state_updates_disabled() if setting == "vmap" else contextlib.nullcontext():
            y = _forward(name, layer, kwargs, setting)(given)
        cotangent = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        grads = torch.autograd.grad((y * cotangent).sum(), [leaf, *params]) if differentiate else None

    weights = {n: t.detach().double().requires_grad_(t.requires_grad)
               for n, t in [*layer.named_parameters(), *layer.named_buffers()] if t.is_floating_point()}
    leaf64 = x.double().requires_grad_()
    expected = (torch.stack([oracle(t, weights, layer) for t in leaf64]) if setting == "vmap"
                else oracle(leaf64, weights, layer))
    tolerance = 5e-2 if setting == "bf16 autocast" else 1e-4
    assert y.dtype in ((torch.float32, torch.bfloat16) if setting == "bf16 autocast" else (torch.float32,))
    _close(y, expected, tolerance, f"{name} under {setting}: output")
    if differentiate:
        params64 = [weights[n] for n, p in layer.named_parameters() if p.requires_grad]
        expected_grads = torch.autograd.grad((expected * cotangent.double()).sum(), [leaf64, *params64])
        for i, (got, want) in enumerate(zip(grads, expected_grads)):
            # A parameter's gradient sums over the batch: float32's rounding grows with the count.
            summed = 1.0 if i == 0 else (x.numel() / want.numel()) ** 0.5
            _close(got, want, 4 * tolerance * summed, f"{name} under {setting}: gradient {i}")


@pytest.mark.parametrize("name", list(CASES))
def test_second_order_gradients(name):
    """A backward that is itself differentiated (create_graph=True: a gradient penalty, as in a
    WGAN-GP critic): the gradient of the input gradient's squared norm, for the input and every
    weight, against the float64 oracle. BatchNormalization's was silently wrong (off by 38 on
    this test) while its backward operator had no gradient of its own."""
    make, kwargs, oracle = CASES[name]
    x = _input(None)
    layer = _filled(make(), x)
    params = _params(layer)

    def penalty_grads(f, leaf, weights):
        y = f(leaf)
        cotangent = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
        (g,) = torch.autograd.grad((y * cotangent).sum(), leaf, create_graph=True)
        found = torch.autograd.grad(g.square().sum(), [leaf, *weights], allow_unused=True)
        return [torch.zeros_like(w) if d is None else d for d, w in zip(found, [leaf, *weights])]

    got = penalty_grads(_forward(name, layer, kwargs, None), x.clone().requires_grad_(), params)
    weights = {n: t.detach().double().requires_grad_(t.requires_grad)
               for n, t in [*layer.named_parameters(), *layer.named_buffers()] if t.is_floating_point()}
    params64 = [weights[n] for n, p in layer.named_parameters() if p.requires_grad]
    want = penalty_grads(lambda t: oracle(t, weights, layer), x.double().requires_grad_(), params64)
    for i, (a, b) in enumerate(zip(got, want)):
        _close(a, b, 1e-3, f"{name}: second-order gradient {i}")


@pytest.mark.parametrize("setting", [*SETTINGS, "torch.compile"])
def test_one_sample_convolution_inference(setting):
    """`lamina::convolution` sends one large channels_last Conv1D sample to oneDNN itself at
    inference (torch would take its im2col kernel): the same numbers as float64 F.conv1d under
    each setting, whichever route the setting leaves it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 300 if setting == "strided" else 150, 128, generator=g)
    x = x[:, ::2] if setting == "strided" else x
    x = x.transpose(0, 1).contiguous().transpose(0, 1) if setting == "non-contiguous" else x
    with SETTINGS.get(setting, contextlib.nullcontext)():
        layer = _filled(layers.Conv1D(256, 5, padding="same"), x)
        torch.clear_autocast_cache()
        with torch.no_grad():
            if setting == "vmap":
                y = torch.func.vmap(layer)(torch.stack([x, -x]))
            else:
                y = (torch.compile(layer) if setting == "torch.compile" else layer)(x)
    weights = {n: t.detach().double() for n, t in layer.named_parameters()}
    expected = _conv_oracle(x.double(), weights)
    expected = torch.stack([expected, -expected + 2 * weights["bias"]]) if setting == "vmap" else expected
    _close(y, expected, 5e-2 if setting == "bf16 autocast" else 1e-4, f"one-sample Conv1D under {setting}")


def _close(got, want, tolerance, what):
    scale = want.abs().max().item() + 1.0
    torch.testing.assert_close(got.double(), want.detach(), atol=tolerance * scale, rtol=tolerance,
                               msg=lambda m: f"{what}\n{m}")


def test_default_float64_training_norms_on_float32_input():
    """The bug this matrix was written for: with the default dtype float64, BatchNormalization in
    training on float32 input was off by 3e31, InstanceNormalization by 75 and GroupNormalization
    by 38 (the loops' outputs were allocated in the default dtype and read as float32)."""
    x = torch.randn(8, 20, 16)
    with _default_dtype():
        outputs = [layers.BatchNormalization()(x, training=True), layers.InstanceNormalization()(x),
                   layers.GroupNormalization(groups=4)(x)]
    channels_first = x.transpose(1, 2)
    expected = [F.batch_norm(channels_first, None, None, training=True, eps=1e-3),
                F.instance_norm(channels_first, eps=1e-3), F.group_norm(channels_first, 4, eps=1e-3)]
    for y, want in zip(outputs, expected):
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, want.transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s != "vmap"] + ["torch.compile"])
def test_dropout_statistics(setting):
    """Dropout's mask operator under each setting: the identity in inference; in training about
    `rate` of the values dropped, survivors scaled by 1 / (1 - rate), the gradient the same mask."""
    rate, x = 0.3, torch.rand(200, 100) + 0.5
    x = x.t().contiguous().t() if setting == "non-contiguous" else x
    with SETTINGS.get(setting, contextlib.nullcontext)():
        layer = layers.Dropout(rate)
        call = torch.compile(layer) if setting == "torch.compile" else layer
        leaf = x.clone().requires_grad_(setting != "inference_mode")
        assert torch.equal(call(leaf, training=False), leaf)
        y = call(leaf, training=True)
        grad = torch.autograd.grad(y.sum(), leaf)[0] if leaf.requires_grad else None
    dropped = y == 0
    assert abs(dropped.float().mean().item() - rate) < 0.02
    tolerance = 1e-2 if setting == "bf16 autocast" else 1e-6
    torch.testing.assert_close(y[~dropped].float(), x[~dropped] / (1 - rate), rtol=tolerance,
                               atol=tolerance)
    if grad is not None:
        torch.testing.assert_close(grad, torch.where(dropped, 0.0, 1 / (1 - rate)), rtol=1e-6, atol=1e-6)
