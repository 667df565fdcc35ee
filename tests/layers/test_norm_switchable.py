"""SwitchableNormalization against a plain restatement of the published algorithm (Luo et al.,
2018, official PyTorch code), in float64: outputs, every gradient, moving statistics, inference."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.kernels import normalization as kernels


@pytest.fixture(autouse=True, params=["one autograd function", "statistics core"])
def route(request, monkeypatch):
    """Every test runs on both routes: SN's own function on the CPU kernels (float32) and the
    generic statistics core with the mixture as a `derive` (other dtypes, devices, tracing)."""
    if request.param == "statistics core":
        monkeypatch.setattr(kernels, "_sn_on_loops", lambda *a: False)
    return request.param


def published_switch_norm(x, gamma, beta, mean_logits, var_logits, moving, training, momentum=0.99,
                          eps=1e-3, using_bn=True, unbiased=False):
    """The reference forward pass, channels-first as published. The published code uses the
    unbiased instance variance (`unbiased=True`); lamina uses the biased one throughout."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    mean_in = flat.mean(-1, keepdim=True)
    var_in = flat.var(-1, keepdim=True, correction=int(unbiased))
    mean_ln = mean_in.mean(1, keepdim=True)
    temp = var_in + mean_in ** 2
    var_ln = temp.mean(1, keepdim=True) - mean_ln ** 2
    means, variances = [mean_in, mean_ln], [var_in, var_ln]
    if using_bn:
        if training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = temp.mean(0, keepdim=True) - mean_bn ** 2
            with torch.no_grad():
                moving[0].mul_(momentum).add_((1 - momentum) * mean_bn.reshape(-1))
                moving[1].mul_(momentum).add_((1 - momentum) * var_bn.reshape(-1))
        else:
            mean_bn, var_bn = moving[0].reshape(1, c, 1), moving[1].reshape(1, c, 1)
        means.append(mean_bn)
        variances.append(var_bn)
    mw, vw = torch.softmax(mean_logits, 0), torch.softmax(var_logits, 0)
    mean = sum(w * m for w, m in zip(mw, means))
    var = sum(w * v for w, v in zip(vw, variances))
    out = ((flat - mean) / (var + eps).sqrt()).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return out * gamma.reshape(shape) + beta.reshape(shape)


def _random_weights(layer, channels, branches, rng):
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 1, channels),
               rng.normal(0, 1, branches), rng.normal(0, 1, branches)]
    if layer.using_bn:
        weights += [rng.normal(0, 1, channels), rng.uniform(0.5, 2, channels)]
    layer.set_weights(weights)
    return [torch.tensor(w, dtype=torch.float64, requires_grad=i < 4) for i, w in enumerate(weights)]


@pytest.mark.parametrize("shape", [(4, 6, 3), (3, 5, 4, 2), (5, 3)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("using_bn", [True, False])
def test_matches_the_published_algorithm(shape, training, using_bn, rng):
    layer = layers.SwitchableNormalization(using_bn=using_bn)
    x = rng.normal(1.0, 2.0, shape)
    layer(torch.zeros(shape))
    gamma, beta, mean_logits, var_logits, *moving = _random_weights(layer, shape[-1], 2 + using_bn, rng)
    cotangent = torch.as_tensor(rng.standard_normal(shape))

    x_ref = torch.tensor(x, requires_grad=True)
    out_ref = published_switch_norm(x_ref.movedim(-1, 1), gamma, beta, mean_logits, var_logits, moving,
                                    training, using_bn=using_bn).movedim(1, -1)
    grads_ref = torch.autograd.grad((out_ref * cotangent).sum(),
                                    [x_ref, gamma, beta, mean_logits, var_logits])

    x_mine = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    out = layer(x_mine, training=training)
    params = [layer.gamma, layer.beta, layer.mean_weights, layer.variance_weights]
    grads = torch.autograd.grad((out * cotangent.float()).sum(), [x_mine, *params])
    np.testing.assert_allclose(out.detach().numpy(), out_ref.detach().numpy(), atol=2e-5, rtol=1e-5)
    for name, g, r in zip(["x", "gamma", "beta", "mean_weights", "variance_weights"], grads, grads_ref):
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=2e-4, rtol=1e-4, err_msg=name)
    for mine, ref in zip(layer.get_weights()[4:], moving):
        np.testing.assert_allclose(mine, ref.detach().numpy(), atol=1e-6, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:var\\(\\)")  # the published unbiased variance of one value
def test_single_spatial_element_is_finite_where_the_published_code_gives_nan(rng):
    x = torch.tensor(rng.standard_normal((6, 4)), dtype=torch.float32, requires_grad=True)
    layer = layers.SwitchableNormalization()
    out = layer(x, training=True)
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    ones, zeros = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    published = published_switch_norm(x.detach().double(), ones, zeros, torch.ones(3), torch.ones(3),
                                      [zeros.clone(), ones.clone()], True, unbiased=True)
    assert torch.isnan(published).all()


def test_mixture_reports_the_softmax_of_the_learned_logits():
    layer = layers.SwitchableNormalization()
    layer(torch.randn(2, 5, 3))
    assert layer.mixture()["mean"] == pytest.approx({"instance": 1 / 3, "layer": 1 / 3, "batch": 1 / 3})
    with torch.no_grad():
        layer.variance_weights.copy_(torch.tensor([0.0, np.log(2.0), np.log(3.0)]))
    assert layer.mixture()["variance"] == pytest.approx({"instance": 1 / 6, "layer": 2 / 6, "batch": 3 / 6})
    two = layers.SwitchableNormalization(using_bn=False)
    two(torch.randn(2, 3))
    assert two.mixture()["mean"] == pytest.approx({"instance": 0.5, "layer": 0.5})
    assert [w.shape for w in two.get_weights()] == [(3,), (3,), (2,), (2,)]


def test_plain_average_of_batch_statistics_without_moving_average(rng):
    layer = layers.SwitchableNormalization(using_moving_average=False)
    batches = [torch.as_tensor(rng.normal(i, 1 + i, (8, 5, 3)), dtype=torch.float32) for i in range(3)]
    for x in batches:
        layer(x, training=True)
    means = torch.stack([x.mean((0, 1)) for x in batches])
    variances = torch.stack([x.var((0, 1), correction=0) for x in batches])
    torch.testing.assert_close(layer.moving_mean, means.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.moving_variance, variances.mean(0), atol=1e-5, rtol=1e-5)
    assert layer.moving_count.item() == 3


def test_only_the_batch_branch_tracks_and_uses_moving_statistics(rng):
    layer = layers.SwitchableNormalization()
    x = torch.as_tensor(rng.normal(2.0, 3.0, (6, 4, 3)), dtype=torch.float32)
    layer(x)
    with torch.no_grad():
        layer.mean_weights.copy_(torch.tensor([0.0, 0.0, -50.0]))  # batch branch weight ~ 0
        layer.variance_weights.copy_(torch.tensor([0.0, 0.0, -50.0]))
    torch.testing.assert_close(layer(x, training=False), layer(x, training=True), atol=1e-5, rtol=1e-5)
    layer.trainable = False  # as BatchNormalization: frozen means inference statistics, no updates
    before = layer.moving_mean.clone()
    with torch.no_grad():
        layer.mean_weights.copy_(torch.tensor([-50.0, -50.0, 0.0]))
    frozen = layer(x, training=True)
    torch.testing.assert_close(layer.moving_mean, before)
    torch.testing.assert_close(frozen, layer(x, training=False))


def test_predict_never_updates_and_fit_does(rng):
    model = lamina.Sequential([layers.Input((6, 2)), layers.SwitchableNormalization(), layers.Flatten(),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = rng.normal(1.0, 2.0, (16, 6, 2)).astype("float32"), np.arange(16) % 2
    before = [w.copy() for w in model.layers[0].get_weights()]
    model.predict(x, training=True, verbose=0)
    model.evaluate(x, y, verbose=0)
    for b, a in zip(before, model.layers[0].get_weights()):
        np.testing.assert_array_equal(b, a)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = model.layers[0].get_weights()
    assert not np.allclose(before[2], after[2]) and not np.allclose(before[4], after[4])


def test_config_round_trip_and_half_precision():
    layer = layers.SwitchableNormalization(momentum=0.9, using_bn=False, epsilon=1e-5, center=False)
    assert layers.SwitchableNormalization.from_config(layer.get_config()).get_config() == layer.get_config()
    x = (torch.randn(4, 8, 3) + 50).to(torch.bfloat16)
    out = layers.SwitchableNormalization()(x, training=True)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_each_route_is_the_one_taken(route, monkeypatch, rng):
    """The fixture's two routes differ: float32 on the CPU runs SN's own autograd function unless
    the route is forced to the statistics core."""
    calls = []
    real = kernels._sn_mix_forward
    monkeypatch.setattr(kernels, "_sn_mix_forward", lambda *a: calls.append(1) or real(*a))
    layer = layers.SwitchableNormalization()
    layer(torch.as_tensor(rng.standard_normal((4, 6, 5, 3)).astype("float32")), training=True)
    own = route == "one autograd function" and kernels._statistics_library() is not None
    assert len(calls) == (1 if own else 0)
