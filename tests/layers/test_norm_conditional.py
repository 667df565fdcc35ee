"""ConditionalBatchNormalization against Keras 3's BatchNormalization without affine, followed by
a per-class gamma/beta lookup (or Keras Dense projections of a condition vector) done by hand."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from tests.parity import keras


def _keras_reference(x, training, gamma, beta, k_bn):
    """Keras BN(center=False, scale=False), then y * gamma + beta per sample (by hand)."""
    normalized = k_bn(x, training=training)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return normalized * gamma.reshape(shape) + beta.reshape(shape)


@pytest.mark.parametrize("shape", [(6, 4), (5, 7, 4), (3, 4, 5, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_class_conditions_match_keras_batch_norm_plus_lookup(shape, training, rng):
    k_bn = keras.layers.BatchNormalization(center=False, scale=False,
                                           moving_variance_initializer="random_uniform")
    layer = layers.ConditionalBatchNormalization(num_classes=3)
    x_np = rng.normal(1.0, 2.0, shape).astype("float32")
    ids = torch.as_tensor(rng.integers(0, 3, shape[0]))
    k_bn(torch.as_tensor(x_np))
    layer([torch.as_tensor(x_np), ids])
    tables = [rng.uniform(0.5, 1.5, (3, shape[-1])).astype("float32"),
              rng.normal(0, 1, (3, shape[-1])).astype("float32")]
    layer.set_weights(tables + [np.asarray(w) for w in k_bn.get_weights()])
    cotangent = torch.as_tensor(rng.standard_normal(shape).astype("float32"))

    for steps in range(3):  # moving statistics stay in step with Keras' over several calls
        x_k, x_l = (torch.tensor(x_np + steps, requires_grad=True) for _ in range(2))
        g_k, b_k = (torch.tensor(t, requires_grad=True) for t in tables)
        expected = _keras_reference(x_k, training, g_k[ids], b_k[ids], k_bn)
        out = layer([x_l, ids], training=training)
        k_grads = torch.autograd.grad((expected * cotangent).sum(), [x_k, g_k, b_k])
        grads = torch.autograd.grad((out * cotangent).sum(), [x_l, layer.gamma, layer.beta])
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=2e-5)
        for g, k in zip(grads, k_grads):
            np.testing.assert_allclose(g.numpy(), k.numpy(), atol=1e-4, rtol=1e-4)
    for mine, theirs in zip(layer.get_weights()[2:], k_bn.get_weights()):
        np.testing.assert_allclose(mine, np.asarray(theirs), atol=1e-6)


def test_vector_conditions_match_keras_dense_projections(rng):
    x_np = rng.normal(0.0, 2.0, (6, 5, 4)).astype("float32")
    cond_np = rng.standard_normal((6, 3)).astype("float32")
    k_bn = keras.layers.BatchNormalization(center=False, scale=False)
    k_gamma = keras.layers.Dense(4, kernel_initializer="random_normal", bias_initializer="ones")
    k_beta = keras.layers.Dense(4, kernel_initializer="random_normal")
    cond = torch.tensor(cond_np, requires_grad=True)
    x_k = torch.tensor(x_np, requires_grad=True)
    expected = _keras_reference(x_k, True, k_gamma(cond), k_beta(cond), k_bn)

    layer = layers.ConditionalBatchNormalization()
    x = torch.tensor(x_np, requires_grad=True)
    cond_l = torch.tensor(cond_np, requires_grad=True)
    layer([x, cond_l])
    layer.set_weights([np.zeros(4), np.ones(4)] + [np.asarray(w) for w in k_gamma.get_weights()]
                      + [np.asarray(w) for w in k_beta.get_weights()])
    out = layer([x, cond_l], training=True)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=2e-5)
    cotangent = torch.as_tensor(rng.standard_normal(x_np.shape).astype("float32"))
    k_grads = torch.autograd.grad((expected * cotangent).sum(), [x_k, cond])
    grads = torch.autograd.grad((out * cotangent).sum(), [x, cond_l])
    for g, k in zip(grads, k_grads):
        np.testing.assert_allclose(g.numpy(), k.numpy(), atol=1e-4, rtol=1e-4)


def test_starts_as_plain_batch_norm_and_learns_per_class(rng):
    x = torch.as_tensor(rng.normal(3.0, 2.0, (8, 6, 4)).astype("float32"))
    ids = torch.arange(8) % 2
    for layer, condition in [(layers.ConditionalBatchNormalization(num_classes=2), ids),
                             (layers.ConditionalBatchNormalization(), torch.randn(8, 5))]:
        plain = layers.BatchNormalization(center=False, scale=False)
        torch.testing.assert_close(layer([x, condition], training=True), plain(x, training=True))


def test_works_in_a_functional_model_with_int_ids(rng):
    images, labels = layers.Input((6, 3)), layers.Input((1,), dtype="int64")
    h = layers.ConditionalBatchNormalization(num_classes=4)([images, labels])
    model = lamina.Model([images, labels], layers.Dense(1)(layers.Flatten()(h)))
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((16, 6, 3)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
    ids = rng.integers(0, 4, (16, 1))
    model.fit([x, ids], y, epochs=1, batch_size=8, verbose=0)
    assert model.predict([x, ids], verbose=0).shape == (16, 1)


def test_bad_conditions_give_clear_errors():
    layer = layers.ConditionalBatchNormalization(num_classes=3, name="cbn")
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"'cbn'.*integer class ids"):
        layer([x, torch.zeros(4)])
    with pytest.raises(ValueError, match=r"'cbn'.*\[0, 3\).*from 0 to 3"):
        layer([x, torch.tensor([0, 1, 2, 3])])
    with pytest.raises(ValueError, match=r"'cbn'.*3 class ids for a batch of 4"):
        layer([x, torch.tensor([0, 1, 2])])
    with pytest.raises(ValueError, match=r"called on \[inputs, condition\]"):
        layers.ConditionalBatchNormalization(num_classes=3)(x)
    with pytest.raises(ValueError, match="float condition of shape"):
        layers.ConditionalBatchNormalization()([x, torch.tensor([0, 1, 2, 3])])
    with pytest.raises(ValueError, match="`num_classes` must be a positive int"):
        layers.ConditionalBatchNormalization(num_classes=0)


def test_config_round_trip_and_weights():
    layer = layers.ConditionalBatchNormalization(num_classes=5, momentum=0.9, synchronized=True)
    config = layer.get_config()
    assert "center" not in config and config["num_classes"] == 5
    assert layers.ConditionalBatchNormalization.from_config(config).get_config() == config
    layer([torch.zeros(2, 3), torch.tensor([0, 4])])
    assert [w.shape for w in layer.get_weights()] == [(5, 3), (5, 3), (3,), (3,)]
