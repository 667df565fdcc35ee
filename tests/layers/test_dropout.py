import math

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from lamina.kernels import dropout as _dropout_kernel
from tests.parity import assert_parity, keras

# (name, kwargs, input shape) for every dropout-type layer and option.
LAYERS = [
    ("Dropout", {"rate": 0.3}, (4, 5, 6)),
    ("Dropout", {"rate": 0.3, "noise_shape": (None, 1, 6), "seed": 3}, (4, 5, 6)),
    ("SpatialDropout1D", {"rate": 0.3}, (4, 5, 6)),
    ("SpatialDropout2D", {"rate": 0.3}, (2, 3, 4, 5)),
    ("SpatialDropout2D", {"rate": 0.3, "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("SpatialDropout3D", {"rate": 0.3}, (2, 2, 3, 2, 4)),
    ("GaussianDropout", {"rate": 0.3}, (4, 5, 6)),
    ("GaussianNoise", {"stddev": 0.3}, (4, 5, 6)),
    ("AlphaDropout", {"rate": 0.3, "seed": 1}, (4, 5, 6)),
]
N = 200_000  # entries for the statistical checks: standard errors ~1e-3


@pytest.mark.parametrize("name,kwargs,shape", LAYERS)
def test_identity_in_inference_as_keras(name, kwargs, shape, rng):
    x = rng.standard_normal(shape).astype("float32")
    out = assert_parity(getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs), x)
    np.testing.assert_array_equal(out[0], x)


@pytest.mark.parametrize("name,kwargs,shape", LAYERS)
def test_noisy_in_training_marked_for_predict_mc_and_config_round_trips(name, kwargs, shape):
    layer = getattr(layers, name)(**kwargs)
    assert layer.is_dropout
    x = torch.randn(shape)
    assert not torch.equal(layer(x, training=True), x)
    layer.train()
    assert not torch.equal(layer(x), x)
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    keras_config = getattr(keras.layers, name)(**kwargs).get_config()
    assert getattr(layers, name).from_config(keras_config).get_config() == {
        **layer.get_config(), "name": keras_config["name"]}


@pytest.mark.parametrize("seed", [None, 7])
def test_dropout_drops_rate_and_scales_survivors(seed, mask_route):
    rate = 0.3
    x = torch.rand(N) + 0.5
    out = layers.Dropout(rate, seed=seed)(x, training=True)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - rate) < 0.005
    torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - rate))
    assert abs(out.mean().item() - x.mean().item()) < 0.01  # the expected value is kept


@pytest.fixture(params=["compiled mask", "torch draw"])
def mask_route(request, monkeypatch):
    """The mask operator's two routes: the compiled hash (float32 CPU) and torch's uniform draw."""
    if request.param == "torch draw":
        monkeypatch.setattr(_dropout_kernel, "_on_mask_loop", lambda like: False)
    elif _dropout_kernel.library() is None:
        pytest.skip("no C compiler for the kernels")
    return request.param


def test_unseeded_dropout_follows_the_global_generator(mask_route):
    x = torch.randn(3, 50)
    torch.manual_seed(5)
    first = layers.Dropout(0.4)(x, training=True)
    torch.manual_seed(5)
    torch.testing.assert_close(layers.Dropout(0.4)(x, training=True), first, rtol=0, atol=0)
    torch.manual_seed(6)
    assert not torch.equal(layers.Dropout(0.4)(x, training=True), first)


def test_torch_route_draws_a_uniform_mask_from_the_call_seed():
    x = torch.randn(3, 50, dtype=torch.float64)  # not float32: the compiled mask does not apply
    torch.manual_seed(5)
    seed = int(torch.randint(0, 2**63 - 1, ()))
    keep = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) >= 0.4
    torch.manual_seed(5)
    out = layers.Dropout(0.4)(x, training=True)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.where(keep, x / 0.6, 0.0), rtol=0, atol=0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_compiled_masks_are_independent_bernoulli_draws(rate, mask_route):
    """Against the binomial model: the drop rate, neighbours dropped together (rate**2), and two
    calls on the same input agreeing as independent draws do, each within 5 standard errors."""
    x = torch.ones(N)
    layer = layers.Dropout(rate)
    first, second = (layer(x, training=True) == 0 for _ in range(2))

    def close(observed, p, n):
        assert abs(observed - p) < 5 * math.sqrt(p * (1 - p) / n), (observed, p)

    close(first.float().mean().item(), rate, N)
    close((first[:-1] & first[1:]).float().mean().item(), rate**2, N - 1)
    close((first & second).float().mean().item(), rate**2, N)
    rows = first.reshape(400, 500).float().mean(1)  # no drift along the tensor
    assert rows.std().item() < 3 * math.sqrt(rate * (1 - rate) / 500)


def test_compiled_mask_matches_the_hash_by_hand():
    """The kernel's rule, restated in Python for a few elements: kept iff hash(seed, i) >= the
    threshold, survivors scaled by 1 / (1 - rate)."""
    if _dropout_kernel.library() is None:
        pytest.skip("no C compiler for the kernels")

    def mix32(v):
        v ^= v >> 16
        v = (v * 0x7FEB352D) & 0xFFFFFFFF
        v ^= v >> 15
        v = (v * 0x846CA68B) & 0xFFFFFFFF
        return v ^ (v >> 16)

    seed, rate = 0x0123456789ABCDEF, 0.3
    x = torch.rand(1000) + 0.5
    out = x * _dropout_kernel.mask(x, seed, rate)
    kept = torch.tensor([mix32((mix32(i ^ (seed & 0xFFFFFFFF)) + (seed >> 32)) & 0xFFFFFFFF)
                         >= round(rate * 2**32) for i in range(1000)])
    assert 200 < (~kept).sum() < 400
    torch.testing.assert_close(out, torch.where(kept, x / (1 - rate), 0.0))


def test_dropout_gradient_is_the_scaled_mask(mask_route):
    x = torch.randn(10, 20, requires_grad=True)
    out = layers.Dropout(0.5, seed=2)(x, training=True)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() * 2.0)


def test_noise_shape_broadcasts_one_mask_over_the_unit_axes():
    x = torch.rand(8, 10, 16) + 1
    out = layers.Dropout(0.5, noise_shape=(None, 1, None))(x, training=True)
    dropped = out == 0
    assert torch.equal(dropped, dropped[:, :1, :].expand_as(dropped))
    assert 0 < dropped.float().mean() < 1
    with pytest.raises(ValueError, match=r"Dropout 'dropout_1': noise_shape=\(None, 3\)"):
        layers.Dropout(0.5, noise_shape=(None, 3))(x, training=True)


@pytest.mark.parametrize("name,shape,data_format", [
    ("SpatialDropout1D", (50, 7, 40), "channels_last"),
    ("SpatialDropout2D", (50, 3, 4, 40), "channels_last"),
    ("SpatialDropout2D", (50, 40, 3, 4), "channels_first"),
    ("SpatialDropout3D", (50, 2, 3, 2, 40), "channels_last"),
])
def test_spatial_dropout_zeroes_whole_channels(name, shape, data_format):
    kwargs = {} if name == "SpatialDropout1D" else {"data_format": data_format}
    x = torch.rand(shape) + 1
    out = getattr(layers, name)(0.4, **kwargs)(x, training=True)
    channels = out.movedim(1, -1) if data_format == "channels_first" else out
    per_channel = (channels == 0).reshape(shape[0], -1, channels.shape[-1])
    all_or_none = per_channel.all(1) | ~per_channel.any(1)
    assert all_or_none.all()
    assert abs(per_channel.all(1).float().mean().item() - 0.4) < 0.06  # 2000 channels
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / 0.6)


def test_spatial_dropout_checks_rank():
    with pytest.raises(ValueError, match=r"'spatial_dropout1d'.*expected ndim=3"):
        layers.SpatialDropout1D(0.2)(torch.zeros(2, 3))


@pytest.mark.parametrize("name,kwargs", [
    ("Dropout", {"rate": 0.5}), ("Dropout", {"rate": 0.5, "noise_shape": (None, 1, None)}),
    ("SpatialDropout1D", {"rate": 0.5}), ("GaussianDropout", {"rate": 0.5}),
    ("GaussianNoise", {"stddev": 1.0}), ("AlphaDropout", {"rate": 0.5}),
])
def test_same_seed_same_masks_and_reproducible(name, kwargs):
    x = torch.randn(4, 6, 8)
    first, second = (getattr(layers, name)(**kwargs, seed=11) for _ in range(2))
    torch.randn(100)  # draws from the global generator do not disturb a seeded layer
    draws = [first(x, training=True), first(x, training=True)]
    torch.testing.assert_close(second(x, training=True), draws[0], rtol=0, atol=0)
    torch.testing.assert_close(second(x, training=True), draws[1], rtol=0, atol=0)
    assert not torch.equal(draws[0], draws[1])  # the stream moves on between calls
    other = getattr(layers, name)(**kwargs, seed=12)(x, training=True)
    assert not torch.equal(other, draws[0])


def test_unseeded_layers_follow_set_random_seed():
    x = torch.randn(4, 8)
    lamina.utils.set_random_seed(3)
    a = layers.GaussianNoise(0.5)(x, training=True)
    lamina.utils.set_random_seed(3)
    torch.testing.assert_close(layers.GaussianNoise(0.5)(x, training=True), a, rtol=0, atol=0)


def test_gaussian_dropout_statistics():
    rate = 0.2
    out = layers.GaussianDropout(rate)(torch.ones(N), training=True)
    assert abs(out.mean().item() - 1) < 0.01
    assert abs(out.var().item() - rate / (1 - rate)) < 0.01


def test_gaussian_noise_statistics():
    x = torch.full((N,), 3.0)
    noise = layers.GaussianNoise(0.5)(x, training=True) - x
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 0.5) < 0.01


def test_alpha_dropout_keeps_selu_statistics_and_matches_the_formula():
    rate = 0.2
    # Data from its own stream: a mask drawn from the same seed as the data would correlate with it.
    x = torch.randn(N, generator=torch.Generator().manual_seed(123))
    out = layers.AlphaDropout(rate, seed=0)(x, training=True)
    assert abs(out.mean().item()) < 0.01 and abs(out.var().item() - 1) < 0.01
    # Hand-computed affine correction (Klambauer et al. 2017, section "alpha-dropout").
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = 1 / math.sqrt((1 - rate) * (1 + rate * alpha_p**2))
    b = -a * alpha_p * rate
    dropped = torch.isclose(out, torch.tensor(a * alpha_p + b))
    assert abs(dropped.float().mean().item() - rate) < 0.005
    torch.testing.assert_close(out[~dropped], a * x[~dropped] + b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_kept(dtype):
    x = torch.randn(8, 8, dtype=dtype)
    for layer in (layers.Dropout(0.5, seed=1), layers.GaussianNoise(0.1), layers.AlphaDropout(0.1)):
        assert layer(x, training=True).dtype == dtype


def test_masks_pass_through():
    x = torch.ones(2, 3, 4)
    x._lamina_mask = torch.tensor([[True, False, True], [True, True, False]])
    for layer in (layers.Dropout(0.5), layers.GaussianNoise(0.1), layers.SpatialDropout1D(0.2)):
        assert torch.equal(layer(x, training=True)._lamina_mask, x._lamina_mask)


@pytest.mark.parametrize("rate", [1, 1.0, -0.1, 2, "0.5", float("nan"), None, True])
@pytest.mark.parametrize("name", ["Dropout", "SpatialDropout2D", "GaussianDropout", "AlphaDropout"])
def test_rate_must_be_in_0_1(name, rate):
    with pytest.raises(ValueError, match=rf"{name}: `rate` .* \[0, 1\).*Received: rate="):
        getattr(layers, name)(rate)


@pytest.mark.parametrize("bad", [
    {"stddev": -1.0}, {"stddev": float("inf")}, {"stddev": 0.1, "seed": 1.5},
])
def test_gaussian_noise_arguments(bad):
    with pytest.raises(ValueError, match="GaussianNoise: `(stddev|seed)`"):
        layers.GaussianNoise(**bad)


@pytest.mark.parametrize("noise_shape", ["(None, 1)", (None, 0), (None, 1.5), 3])
def test_noise_shape_validation(noise_shape):
    with pytest.raises(ValueError, match="noise_shape"):
        layers.Dropout(0.5, noise_shape=noise_shape)


def test_zero_rate_is_the_identity_in_training():
    x = torch.randn(3, 4)
    for layer in (layers.Dropout(0.0), layers.GaussianDropout(0.0), layers.GaussianNoise(0.0),
                  layers.AlphaDropout(0.0)):
        assert layer(x, training=True) is x


def test_predict_is_deterministic_and_predict_mc_varies():
    model = lamina.Sequential([layers.Input((6,)), layers.Dense(8), layers.Dropout(0.5, seed=4),
                               layers.GaussianNoise(0.1), layers.Dense(2)])
    x = np.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    mc = model.predict_mc(x, samples=8)
    assert mc.mean.shape == (5, 2) and (mc.std > 0).all()
