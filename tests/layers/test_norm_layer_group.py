"""LayerNormalization, GroupNormalization and InstanceNormalization against Keras 3 (outputs and
input gradients) and against torch's F.layer_norm / F.group_norm / F.instance_norm (outputs and
all gradients), plus batch independence, half precision and degenerate inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lamina import layers
from tests.parity import assert_parity, keras

RANDOM_AFFINE = {"beta_initializer": "random_normal", "gamma_initializer": "random_uniform"}


@pytest.mark.parametrize("shape, axis", [
    ((6, 5), -1), ((4, 7, 3), -1), ((3, 4, 5, 2), [1, 2, 3]), ((3, 4, 5, 2), [-2, -1]),
    ((2, 3, 4, 2, 3), [1, 3]),
])
def test_layer_norm_matches_keras(shape, axis, rng):
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    assert_parity(layers.LayerNormalization(axis=axis),
                  keras.layers.LayerNormalization(axis=axis, **RANDOM_AFFINE), x, atol=2e-5)


def test_layer_norm_over_a_middle_axis_matches_the_formula(rng):
    """Keras 3's torch backend sends a single middle axis to F.layer_norm with the wrong shape
    (it raises), so the oracle here is the formula itself, in float64."""
    x = rng.normal(1.0, 2.0, (4, 7, 3))
    layer = layers.LayerNormalization(axis=1, **RANDOM_AFFINE)
    out = layer(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    gamma, beta = (w[:, None] for w in layer.get_weights())
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3) * gamma + beta
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_layer_norm_without_center_or_scale_matches_keras(center, scale, rng):
    x = rng.standard_normal((5, 6)).astype("float32")
    assert_parity(layers.LayerNormalization(center=center, scale=scale),
                  keras.layers.LayerNormalization(center=center, scale=scale, **RANDOM_AFFINE), x)


@pytest.mark.parametrize("shape, groups", [
    ((6, 8), 2), ((4, 7, 8), 4), ((4, 7, 8), 1), ((3, 4, 5, 6), -1), ((2, 3, 2, 4, 4), 2), ((4, 7, 8), 8),
])
def test_group_norm_matches_keras(shape, groups, rng):
    x = rng.normal(-1.0, 3.0, shape).astype("float32")
    assert_parity(layers.GroupNormalization(groups), keras.layers.GroupNormalization(groups, **RANDOM_AFFINE),
                  x, atol=2e-5)


def test_group_norm_channels_first_and_no_affine_match_keras(rng):
    x = rng.standard_normal((3, 6, 5)).astype("float32")
    assert_parity(layers.GroupNormalization(3, axis=1),
                  keras.layers.GroupNormalization(3, axis=1, **RANDOM_AFFINE), x)
    assert_parity(layers.GroupNormalization(5, center=False, scale=False),
                  keras.layers.GroupNormalization(5, center=False, scale=False), x)


def test_instance_norm_is_keras_group_norm_with_one_channel_per_group(rng):
    x = rng.standard_normal((3, 9, 4)).astype("float32")
    assert_parity(layers.InstanceNormalization(), keras.layers.GroupNormalization(-1, **RANDOM_AFFINE), x)


def _affine(channels):
    return (torch.rand(channels) + 0.5).requires_grad_(), torch.randn(channels).requires_grad_()


def _compare_with_torch(layer, x, reference):
    """Outputs and the gradients of x, gamma and beta against a torch reference."""
    layer(x)
    gamma, beta = _affine(x.shape[-1])
    layer.set_weights([gamma.detach().numpy(), beta.detach().numpy()])
    x = x.clone().requires_grad_()
    cotangent = torch.randn(x.shape)
    out = layer(x)
    grads = torch.autograd.grad((out * cotangent).sum(), [x, layer.gamma, layer.beta])
    expected = reference(x, gamma, beta)
    expected_grads = torch.autograd.grad((expected * cotangent).sum(), [x, gamma, beta])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(32, 10, 8), (4, 6, 5, 8)])
def test_layer_group_and_instance_norm_match_torch_functional(shape):
    x = torch.randn(shape) * 2 + 0.5
    _compare_with_torch(layers.LayerNormalization(), x,
                        lambda x, g, b: F.layer_norm(x, (shape[-1],), g, b, 1e-3))
    _compare_with_torch(layers.GroupNormalization(4), x,
                        lambda x, g, b: F.group_norm(x.movedim(-1, 1), 4, g, b, 1e-3).movedim(1, -1))
    _compare_with_torch(layers.InstanceNormalization(), x,
                        lambda x, g, b: F.instance_norm(x.movedim(-1, 1), weight=g, bias=b,
                                                        eps=1e-3).movedim(1, -1))


@pytest.mark.parametrize("make", [lambda: layers.LayerNormalization(), lambda: layers.GroupNormalization(2),
                                  lambda: layers.InstanceNormalization()])
def test_per_sample_norms_do_not_depend_on_the_batch_or_mode(make):
    layer = make()
    x = torch.randn(5, 7, 4)
    full = layer(x, training=True)
    torch.testing.assert_close(layer(x[:1], training=True), full[:1])
    torch.testing.assert_close(layer(x, training=False), full)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("make", [lambda: layers.LayerNormalization(), lambda: layers.GroupNormalization(2),
                                  lambda: layers.InstanceNormalization()])
def test_half_precision_inputs_keep_their_dtype_with_float32_statistics(dtype, make):
    x32 = torch.randn(4, 16, 8) * 0.5 + 200.0  # a mean that would swamp float16 sums of squares
    x = x32.to(dtype).requires_grad_()
    layer = make()
    out = layer(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), layer(x.detach().float()), atol=0.05, rtol=0.02)
    out.float().square().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


def test_zero_variance_and_single_element_groups_give_beta_without_nan():
    for layer, x in [(layers.InstanceNormalization(beta_initializer="ones"), torch.randn(3, 4)),
                     (layers.LayerNormalization(beta_initializer="ones"), torch.full((3, 4), 5.0)),
                     (layers.GroupNormalization(2, beta_initializer="ones"), torch.full((3, 6, 4), -2.0))]:
        x = x.requires_grad_()
        out = layer(x)
        torch.testing.assert_close(out, torch.ones_like(out))
        out.square().sum().backward()
        assert torch.isfinite(x.grad).all()


def test_configs_round_trip():
    for layer in [layers.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False),
                  layers.GroupNormalization(groups=4, axis=1, scale=False, beta_regularizer="l1"),
                  layers.InstanceNormalization(epsilon=1e-5)]:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config
    assert "groups" not in layers.InstanceNormalization().get_config()


def test_argument_and_shape_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"`groups` must be a positive int.*groups=0"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match=r"'gn'.*channels \(6\) must be a multiple.*groups=4"):
        layers.GroupNormalization(4, name="gn")(torch.zeros(2, 6))
    with pytest.raises(TypeError, match="`axis` must be an int or a non-empty list"):
        layers.LayerNormalization(axis="last")
    with pytest.raises(ValueError, match=r"'ln'.*axis 3 is out of bounds"):
        layers.LayerNormalization(axis=3, name="ln")(torch.zeros(2, 4))
    layer = layers.LayerNormalization(name="ln2")
    layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"layer 'ln2'.*axis -1.*value 4"):
        layer(torch.zeros(2, 5))


def test_weights_follow_keras_shapes(rng):
    layer = layers.LayerNormalization(axis=[1, 2])
    layer(torch.zeros(2, 3, 4))
    assert [w.shape for w in layer.get_weights()] == [(3, 4), (3, 4)]
    group = layers.GroupNormalization(2)
    group(torch.zeros(2, 3, 4))
    assert [w.shape for w in group.get_weights()] == [(4,), (4,)]
    np.testing.assert_array_equal(group.get_weights()[0], np.ones(4))
