"""BatchNormalization against Keras 3 (outputs, input gradients, moving statistics after several
steps, masks, trainable=False) and against torch's F.batch_norm; lamina's own rules (predict
never updates, batch of one, half precision, zero variance)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers
from lamina.kernels import normalization as kernels
from tests.parity import assert_parity, keras, run_keras, run_lamina


@pytest.fixture(autouse=True, params=["lamina statistics", "torch fused batch_norm"])
def route(request, monkeypatch):
    """Every test here runs on both routes: lamina's statistics core (the CPU's) and torch's fused
    batch norm (the accelerators' route, forced onto the CPU here)."""
    if request.param.startswith("torch"):
        if "synchronized" in request.node.name:
            pytest.skip("the worker processes choose their own route")
        monkeypatch.setattr(kernels, "_on_fused_batch_norm_device", lambda x: True)
    return request.param


def _keras_moving_init(rng, channels):
    mean = rng.standard_normal(channels).astype("float32")
    var = rng.uniform(0.5, 2.0, channels).astype("float32")
    return ({"moving_mean_initializer": keras.initializers.Constant(mean),
             "moving_variance_initializer": keras.initializers.Constant(var)},
            {"moving_mean_initializer": lamina.initializers.Constant(0.0)}, mean, var)


@pytest.mark.parametrize("shape", [(6, 5), (4, 7, 3), (3, 4, 5, 2), (2, 3, 2, 4, 3)])
@pytest.mark.parametrize("training", [False, True])
def test_matches_keras_every_rank(shape, training, rng):
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    k_args, _, _, _ = _keras_moving_init(rng, shape[-1])
    k_layer = keras.layers.BatchNormalization(
        beta_initializer="random_normal", gamma_initializer="random_uniform", **k_args)
    assert_parity(layers.BatchNormalization(), k_layer, x, training=training, atol=2e-5)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_matches_keras_without_center_or_scale(center, scale, rng):
    x = rng.standard_normal((8, 5, 4)).astype("float32")
    k_layer = keras.layers.BatchNormalization(center=center, scale=scale, gamma_initializer="random_uniform")
    assert_parity(layers.BatchNormalization(center=center, scale=scale), k_layer, x, training=True)


def test_channels_first_axis_matches_keras(rng):
    x = rng.standard_normal((4, 3, 6, 5)).astype("float32")
    k_layer = keras.layers.BatchNormalization(axis=1, gamma_initializer="random_uniform")
    assert_parity(layers.BatchNormalization(axis=1), k_layer, x, training=True)


def test_moving_statistics_and_weight_gradients_match_keras_over_steps(rng):
    """Five training calls: moving mean/variance follow Keras' update exactly, and the gradients
    of gamma and beta match at every step."""
    k_layer = keras.layers.BatchNormalization(momentum=0.9, gamma_initializer="random_uniform")
    layer = layers.BatchNormalization(momentum=0.9)
    batches = [rng.normal(i, 1.0 + i, (16, 10, 6)).astype("float32") for i in range(5)]
    k_layer(torch.as_tensor(batches[0]))
    layer(torch.as_tensor(batches[0]))
    layer.set_weights(k_layer.get_weights())
    for x in batches:
        k_out = k_layer(torch.as_tensor(x), training=True)
        out = layer(torch.as_tensor(x), training=True)
        k_grads = torch.autograd.grad((k_out ** 2).sum(), [k_layer.gamma.value, k_layer.beta.value])
        grads = torch.autograd.grad((out ** 2).sum(), [layer.gamma, layer.beta])
        for g, k in zip(grads, k_grads):
            np.testing.assert_allclose(g.numpy(), k.detach().numpy(), rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-6, atol=1e-6)


def test_masked_statistics_match_keras(rng):
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    mask = rng.uniform(size=(4, 6)) > 0.3
    k_layer = keras.layers.BatchNormalization(gamma_initializer="random_uniform")
    k_out, k_grads = run_keras(k_layer, x, training=True, mask=torch.as_tensor(mask))
    layer = layers.BatchNormalization()
    layer(torch.as_tensor(x))
    layer.set_weights([w for w in k_layer.get_weights()[:2]] + [np.zeros(3), np.ones(3)])
    out, grads = run_lamina(layer, x, training=True, mask=torch.as_tensor(mask))
    np.testing.assert_allclose(out[0], k_out[0], atol=1e-5)
    np.testing.assert_allclose(grads[0], k_grads[0], atol=1e-5)
    np.testing.assert_allclose(layer.get_weights()[2], k_layer.get_weights()[2], atol=1e-6)
    with pytest.raises(ValueError, match="one dimension less"):
        layer(torch.as_tensor(x), training=True, mask=torch.ones(4, 6, 3, dtype=torch.bool))


def test_trainable_false_means_inference_mode_as_keras(rng):
    x = rng.normal(1.0, 2.0, (8, 5)).astype("float32")
    k_args, _, _, _ = _keras_moving_init(rng, 5)
    k_layer = keras.layers.BatchNormalization(**k_args)
    k_layer.trainable = False
    layer = layers.BatchNormalization()
    layer.trainable = False
    assert_parity(layer, k_layer, x, training=True)
    before = [w.copy() for w in layer.get_weights()]
    layer(torch.as_tensor(x), training=True)
    for b, a in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("shape", [(8, 20, 4), (4, 5, 6, 3)])
def test_training_matches_torch_batch_norm(shape, rng):
    """torch's F.batch_norm on the channels_first transpose, with momentum 1 - 0.99 and
    eps 1e-3; torch's running variance is unbiased, Keras' (and lamina's) biased."""
    x = torch.as_tensor(rng.standard_normal(shape).astype("float32"))
    weight, bias = torch.rand(shape[-1]) + 0.5, torch.randn(shape[-1])
    layer = layers.BatchNormalization()
    layer(x)
    layer.set_weights([weight.numpy(), bias.numpy(), np.zeros(shape[-1]), np.ones(shape[-1])])
    out = layer(x, training=True)
    running_mean, running_var = torch.zeros(shape[-1]), torch.ones(shape[-1])
    expected = F.batch_norm(x.movedim(-1, 1), running_mean, running_var, weight, bias, True, 0.01, 1e-3)
    torch.testing.assert_close(out, expected.movedim(1, -1), atol=1e-5, rtol=1e-5)
    count = x.numel() // shape[-1]
    torch.testing.assert_close(layer.moving_mean, running_mean)
    torch.testing.assert_close(layer.moving_variance - 0.99,
                               (running_var - 0.99) * (count - 1) / count, atol=1e-6, rtol=1e-5)


def _model():
    model = lamina.Sequential([layers.Input((10, 3)), layers.BatchNormalization(), layers.Flatten(),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_predict_and_evaluate_never_update_moving_statistics(rng):
    model = _model()
    x = rng.normal(3.0, 2.0, (32, 10, 3)).astype("float32")
    y = np.arange(32) % 2
    bn = model.layers[0]
    before = [w.copy() for w in bn.get_weights()]
    model.predict(x, verbose=0)
    model.predict(x, training=True, verbose=0)
    model.evaluate(x, y, verbose=0)
    for b, a in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(b, a)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.allclose(before[2], bn.get_weights()[2])


def test_batch_of_one_in_training_is_allowed_as_keras(rng):
    x = rng.standard_normal((1, 4)).astype("float32")
    k_layer = keras.layers.BatchNormalization(beta_initializer="random_normal")
    out = assert_parity(layers.BatchNormalization(), k_layer, x, training=True)
    np.testing.assert_allclose(out[0][0], k_layer.get_weights()[1], atol=1e-6)  # variance 0: y = beta
    sequence = rng.standard_normal((1, 9, 4)).astype("float32")
    assert_parity(layers.BatchNormalization(), keras.layers.BatchNormalization(), sequence, training=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_use_float32_statistics(dtype, rng):
    x32 = torch.as_tensor(rng.normal(100.0, 0.5, (64, 8)).astype("float32"))
    x = x32.to(dtype).requires_grad_()
    layer = layers.BatchNormalization()
    out = layer(x, training=True)
    assert out.dtype == dtype and layer.moving_mean.dtype == torch.float32
    reference = layers.BatchNormalization()(x.detach().float(), training=True)
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.02)
    out.float().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()
    torch.testing.assert_close(layer.moving_mean, 0.01 * x.detach().float().mean(0), rtol=1e-4, atol=1e-4)


def test_zero_variance_channel_gives_beta_and_finite_gradients():
    x = torch.randn(16, 3)
    x[:, 1] = 7.0
    x.requires_grad_()
    layer = layers.BatchNormalization(beta_initializer="ones")
    out = layer(x, training=True)
    torch.testing.assert_close(out[:, 1], torch.ones(16))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_config_round_trip_and_argument_errors():
    layer = layers.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False,
                                      gamma_regularizer="l2", synchronized=True, name="bn")
    clone = layers.BatchNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match=r"`momentum`.*Received: momentum=1.5"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match=r"`epsilon`.*Received: epsilon=0"):
        layers.BatchNormalization(epsilon=0)
    with pytest.raises(TypeError, match="`axis` must be an int"):
        layers.BatchNormalization(axis=(1, 2))
    with pytest.raises(ValueError, match=r"'bn2'.*axis 3 is out of bounds"):
        layers.BatchNormalization(axis=3, name="bn2")(torch.zeros(2, 4))
    layer = layers.BatchNormalization(name="bn3")
    layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"layer 'bn3'.*axis -1.*value 4"):
        layer(torch.zeros(2, 5))


def test_weights_use_keras_order_and_parameter_kinds():
    layer = layers.BatchNormalization()
    layer(torch.zeros(2, 3))
    assert [tuple(w.shape) for w in layer.weights] == [(3,)] * 4
    assert layer.trainable_weights == [layer.gamma, layer.beta]
    assert set(layer.state_dict()) == {"gamma", "beta", "moving_mean", "moving_variance"}
    assert layer.count_params() == 12


def test_synchronized_statistics_span_all_processes(tmp_path):
    """Two gloo processes, each with half of a batch: outputs, input gradients and moving
    statistics equal those of one process normalizing the whole batch."""
    import subprocess
    import sys
    from pathlib import Path

    init_file = tmp_path / "rendezvous"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.layers.norm_sync_worker", str(rank), "2",
                               str(init_file), str(tmp_path)], cwd=Path(__file__).parents[2])
             for rank in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    parts = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(2)]

    lamina.utils.set_random_seed(0)
    torch.manual_seed(0)
    x = (torch.randn(8, 5, 3) * 2 + 1).requires_grad_()
    cotangent = torch.randn(8, 5, 3)
    layer = layers.BatchNormalization(gamma_initializer="random_uniform")
    layer(x)
    layer.set_weights(parts[0]["weights"][:2] + [np.zeros(3), np.ones(3)])
    out = layer(x, training=True)
    (out * cotangent).sum().backward()
    torch.testing.assert_close(torch.cat([p["out"] for p in parts]), out.detach())
    torch.testing.assert_close(torch.cat([p["grad"] for p in parts]), x.grad)
    torch.testing.assert_close(parts[0]["gamma_grad"] + parts[1]["gamma_grad"], layer.gamma.grad)
    for rank in range(2):
        np.testing.assert_allclose(parts[rank]["weights"][2], layer.get_weights()[2], atol=1e-6)
        np.testing.assert_allclose(parts[rank]["weights"][3], layer.get_weights()[3], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 150, 8), (16, 5, 4, 3), (6, 5)])
def test_inference_without_gradients_is_the_formula(shape, rng):
    """predict's route (no gradient anywhere: torch's fused batch norm on every device) against
    (x - moving_mean) / sqrt(moving_variance + eps) * gamma + beta in float64."""
    layer = layers.BatchNormalization(epsilon=1e-3)
    x = torch.as_tensor(rng.normal(1.0, 2.0, shape).astype("float32"))
    layer(x)
    c = shape[-1]
    layer.set_weights([rng.uniform(0.5, 2.0, c).astype("float32"), rng.standard_normal(c).astype("float32"),
                       rng.standard_normal(c).astype("float32"), rng.uniform(0.5, 2.0, c).astype("float32")])
    gamma, beta, mean, var = (w.astype("float64") for w in layer.get_weights())
    expected = (x.double().numpy() - mean) / np.sqrt(var + 1e-3) * gamma + beta
    with torch.inference_mode():
        out = layer(x, training=False)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_inference_route_without_center_or_scale_and_on_strided_input(center, scale, rng):
    """The inference route with gamma or beta absent, on a non-contiguous channels_last input
    (a transposed view), against the formula in float64."""
    layer = layers.BatchNormalization(center=center, scale=scale, epsilon=1e-3)
    x = torch.as_tensor(rng.normal(1.0, 2.0, (3, 6, 7)).astype("float32")).transpose(1, 2)  # (3, 7, 6)
    layer(x)
    weights = [rng.uniform(0.5, 2.0, 6).astype("float32") for _ in layer.get_weights()]
    layer.set_weights(weights)
    gamma = weights[0].astype("float64") if scale else 1.0
    beta = weights[int(scale)].astype("float64") if center else 0.0
    mean, var = (w.astype("float64") for w in weights[-2:])
    expected = (x.double().numpy() - mean) / np.sqrt(var + 1e-3) * gamma + beta
    with torch.no_grad():
        out = layer(x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
