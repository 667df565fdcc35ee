"""Mixed precision on the CPU: Keras' policy API; bfloat16 autocast in fit with float32 weights and
float32 normalization statistics; float16 loss scaling (Keras' initial scale, skipped steps)."""

import numpy as np
import pytest
import torch

import lamina
from lamina import layers, mixed_precision


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    mixed_precision.set_global_policy("float32")


def test_policy_names_and_dtypes():
    assert mixed_precision.global_policy() == mixed_precision.DTypePolicy("float32")
    policy = mixed_precision.DTypePolicy("mixed_bfloat16")
    assert (policy.compute_dtype, policy.variable_dtype) == ("bfloat16", "float32")
    assert mixed_precision.DTypePolicy("mixed_float16").compute_dtype == "float16"
    assert mixed_precision.DTypePolicy.from_config(policy.get_config()) == policy
    assert repr(policy) == '<DTypePolicy "mixed_bfloat16">'
    mixed_precision.set_global_policy(policy)
    assert mixed_precision.global_policy().name == "mixed_bfloat16"
    lamina.config.set_dtype_policy("float32")  # Keras' keras.config spelling
    assert lamina.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match=r"Unknown dtype policy 'mixed_float8'.*Received: name="):
        mixed_precision.set_global_policy("mixed_float8")
    with pytest.raises(ValueError, match=r"'bfloat16'.*pass `dtype=` to each layer"):
        mixed_precision.DTypePolicy("bfloat16")


def _model():
    return lamina.Sequential([
        layers.Input((16, 3)),
        layers.Conv1D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(3, activation="softmax"),
    ])


def test_bfloat16_fit_computes_in_half_keeps_float32_weights_and_statistics(rng):
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = _model()
    conv, bn = model.layers[0], model.layers[1]
    seen = {}
    conv.register_forward_hook(lambda m, args, out: seen.update(conv_out=out.detach()))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.standard_normal((32, 16, 3)).astype("float32")
    y = rng.integers(0, 3, 32)
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)  # one step, last call

    assert np.isfinite(history.history["loss"]).all()
    assert seen["conv_out"].dtype == torch.bfloat16  # the convolution ran in bfloat16
    assert all(w.dtype == torch.float32 for w in model.parameters())
    assert bn.moving_mean.dtype == bn.moving_variance.dtype == torch.float32
    # One step over the whole batch: the moving statistics moved 1% towards the float32 statistics
    # of the bfloat16 activations (a half-precision mean would be off by ~1e-3 relative).
    activations = seen["conv_out"].float().reshape(-1, 8)
    torch.testing.assert_close(bn.moving_mean, 0.01 * activations.mean(0), atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(bn.moving_variance, 0.99 + 0.01 * activations.var(0, correction=0),
                               atol=1e-7, rtol=1e-5)

    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32  # numpy has no bfloat16
    mixed_precision.set_global_policy("float32")
    reference = _model()
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(probs, reference.predict(x, verbose=0), atol=3e-2)


def test_a_model_keeps_the_policy_it_was_created_under(rng):
    model = _model()
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert model.dtype_policy.name == "float32"
    assert model.predict(rng.standard_normal((2, 16, 3)).astype("float32"), verbose=0).dtype == np.float32
    assert _model().dtype_policy.name == "mixed_bfloat16"


def test_float16_scales_the_loss_and_skips_overflowing_steps(rng):
    mixed_precision.set_global_policy("mixed_float16")
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((8, 4)).astype("float32")
    y = rng.integers(0, 3, 8)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    scaler = model._grad_scaler
    assert scaler.get_scale() == 2.0**15  # Keras' LossScaleOptimizer starts there; no overflow yet
    assert model.optimizer.iterations == 2

    before = model.get_weights()
    model.fit(x * 1e5, y, batch_size=8, epochs=1, verbose=0)  # float16 logits overflow
    assert scaler.get_scale() == 2.0**14  # halved...
    for w, w0 in zip(model.get_weights(), before):  # ...and the step skipped
        np.testing.assert_array_equal(w, w0)
