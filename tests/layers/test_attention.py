"""MultiHeadAttention and Attention against Keras 3 (torch backend) with copied weights: outputs,
attention scores, input and weight gradients, masks (explicit and carried by the inputs)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402
from lamina import layers  # noqa: E402

RNG = np.random.default_rng(0)


def _arrays(*shapes):
    return [RNG.normal(size=s).astype("float32") for s in shapes]


def _run(layer, arrays, **kwargs):
    """Outputs and gradients (inputs, then weights) for a fixed random cotangent."""
    xs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = layer(*xs, **kwargs)
    outs = list(out) if isinstance(out, tuple) else [out]
    g = torch.Generator().manual_seed(7)
    total = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    weights = [w for w in layer.trainable_weights]
    weights = [w.value if hasattr(w, "value") and not isinstance(w, torch.Tensor) else w for w in weights]
    grads = torch.autograd.grad(total, xs + weights, allow_unused=True)
    return [o.detach().numpy() for o in outs], [None if gr is None else gr.numpy() for gr in grads]


def _pair(arrays, layer_kwargs, call_kwargs=None, build=True):
    call_kwargs = call_kwargs or {}
    k_layer = keras.layers.MultiHeadAttention(**layer_kwargs)
    l_layer = layers.MultiHeadAttention(**layer_kwargs)
    k_layer(*[torch.tensor(a) for a in arrays])
    l_layer(*[torch.tensor(a) for a in arrays])
    l_layer.set_weights(k_layer.get_weights())
    return k_layer, l_layer


def _assert_close(k, lam, atol=1e-5):
    assert len(k) == len(lam)
    for a, b in zip(k, lam):
        if a is None or b is None:
            assert a is None and b is None or np.allclose(a if a is not None else b, 0, atol=atol)
            continue
        np.testing.assert_allclose(b, a, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("layer_kwargs, shapes", [
    ({"num_heads": 2, "key_dim": 3}, [(2, 4, 5), (2, 6, 7)]),
    ({"num_heads": 3, "key_dim": 4, "value_dim": 2, "use_bias": False}, [(2, 5, 6), (2, 5, 6)]),
    ({"num_heads": 2, "key_dim": 3, "output_shape": 4}, [(3, 4, 5), (3, 2, 5), (3, 2, 8)]),
    ({"num_heads": 2, "key_dim": 3, "attention_axes": (1, 2)}, [(2, 3, 4, 5), (2, 3, 4, 5)]),
    ({"num_heads": 2, "key_dim": 3, "attention_axes": 2}, [(2, 3, 4, 5), (2, 3, 2, 5)]),
])
def test_outputs_scores_and_gradients_match_keras(layer_kwargs, shapes):
    arrays = _arrays(*shapes)
    k_layer, l_layer = _pair(arrays, layer_kwargs)
    assert [w.shape for w in l_layer.get_weights()] == [tuple(w.shape) for w in k_layer.weights]
    for flag in (False, True):
        k_out, k_grads = _run(k_layer, arrays, return_attention_scores=flag)
        l_out, l_grads = _run(l_layer, arrays, return_attention_scores=flag)
        _assert_close(k_out, l_out)
        _assert_close(k_grads, l_grads)


@pytest.mark.parametrize("call_kwargs", [
    {"use_causal_mask": True},
    {"attention_mask": "random"},
    {"value_mask": "v"},
    {"value_mask": "v", "key_mask": "v", "use_causal_mask": True},
])
def test_masks_match_keras(call_kwargs):
    q, v = _arrays((3, 5, 4), (3, 5, 6))
    masks = {
        "random": RNG.random((3, 5, 5)) > 0.4,
        "q": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool),
        "v": np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]], bool),
    }
    kwargs = {k: (torch.tensor(masks[v]) if isinstance(v, str) else v) for k, v in call_kwargs.items()}
    k_layer, l_layer = _pair([q, v], {"num_heads": 2, "key_dim": 3})
    # Keras spreads a query that sees no key evenly unless it returns the scores: both paths.
    for scores in (False, True):
        k_out, k_grads = _run(k_layer, [q, v], return_attention_scores=scores, **kwargs)
        l_out, l_grads = _run(l_layer, [q, v], return_attention_scores=scores, **kwargs)
        _assert_close(k_out, l_out)
        _assert_close(k_grads, l_grads)


def _padded_encoder(lib, mha_kwargs):
    tokens = lib.Input((6,), dtype="int32")
    x = lib.layers.Embedding(20, 8, mask_zero=True)(tokens)
    attended = lib.layers.MultiHeadAttention(**mha_kwargs)(x, x)
    pooled = lib.layers.GlobalAveragePooling1D()(attended)
    return lib.Model(tokens, pooled)


def test_masks_carried_by_embedding_in_a_functional_model_match_keras():
    tokens = np.array([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6], [9, 0, 0, 0, 0, 0]])
    k_model = _padded_encoder(keras, {"num_heads": 2, "key_dim": 4})
    l_model = _padded_encoder(lamina, {"num_heads": 2, "key_dim": 4})
    l_model.set_weights(k_model.get_weights())
    k_out = k_model.predict(tokens, verbose=0)
    np.testing.assert_allclose(l_model.predict(tokens, verbose=0), k_out, atol=1e-5)
    # The mask matters: with it ignored, the padded rows would differ.
    unmasked = lamina.Model(*_unmasked(l_model))
    assert not np.allclose(unmasked.predict(tokens, verbose=0), k_out, atol=1e-3)


def _unmasked(model):
    tokens = lamina.Input((6,), dtype="int32")
    emb = model.layers[1]
    x = layers.Lambda(lambda t: emb(t) * 1.0)(tokens)  # the values without the mask
    mha = model.layers[2]
    return tokens, layers.GlobalAveragePooling1D()(mha(x, x))


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_masking_layer_mask_reaches_value_and_query(dropout):
    x = RNG.normal(size=(2, 4, 3)).astype("float32")
    x[0, 2:] = 0.0
    models = []
    for lib in (keras, lamina):
        inp = lib.Input((4, 3))
        masked = lib.layers.Masking()(inp)
        mha = lib.layers.MultiHeadAttention(1, 2, dropout=dropout)
        models.append(lib.Model(inp, mha(masked, masked)))
    models[1].set_weights(models[0].get_weights())
    np.testing.assert_allclose(models[1].predict(x, verbose=0), models[0].predict(x, verbose=0),
                               atol=1e-5)


def test_symbolic_call_with_scores_and_dropout_off_at_inference():
    inp = layers.Input((5, 8))
    out, scores = layers.MultiHeadAttention(2, 4, dropout=0.5)(inp, inp, return_attention_scores=True)
    assert out.shape == (None, 5, 8) and scores.shape == (None, 2, 5, 5)
    model = lamina.Model(inp, [out, scores])
    x = RNG.normal(size=(3, 5, 8)).astype("float32")
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(first[0], second[0])
    trained, trained_scores = model(torch.tensor(x), training=True)
    assert not torch.allclose(trained, torch.tensor(first[0]))
    # As Keras, the scores returned are the probabilities before the dropout.
    torch.testing.assert_close(trained_scores, torch.tensor(first[1]))


def test_dropout_in_training_drops_probabilities():
    mha = layers.MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    x = torch.tensor(RNG.normal(size=(2, 6, 8)).astype("float32"))
    plain = mha(x, x)
    dropped = mha(x, x, training=True)
    assert not torch.allclose(plain, dropped)
    torch.testing.assert_close(mha(x, x), plain)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="dropout"):
        layers.MultiHeadAttention(2, 4, dropout=1.5)
    with pytest.raises(ValueError, match="value.*key"):
        layers.MultiHeadAttention(2, 4)(torch.ones(1, 3, 4), torch.ones(1, 3, 4), torch.ones(1, 2, 4))


@pytest.mark.parametrize("kwargs", [{}, {"use_scale": True}, {"score_mode": "concat", "use_scale": True}])
def test_luong_attention_matches_keras(kwargs):
    q, v, k = _arrays((2, 3, 4), (2, 5, 4), (2, 5, 4))
    q_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    results = []
    for lib_layer in (keras.layers.Attention(**kwargs), layers.Attention(**kwargs)):
        lib_layer([torch.tensor(q), torch.tensor(v), torch.tensor(k)])
        if isinstance(lib_layer, layers.Layer):
            lib_layer.set_weights([np.full((), 1.7, "float32") for _ in lib_layer.get_weights()])
        else:
            lib_layer.set_weights([np.full((), 1.7, "float32") for _ in lib_layer.get_weights()])
        xs = [torch.tensor(a, requires_grad=True) for a in (q, v, k)]
        out, scores = lib_layer(xs, mask=[torch.tensor(q_mask), torch.tensor(v_mask)],
                                return_attention_scores=True, use_causal_mask=True)
        grads = torch.autograd.grad((out * 1.3).sum() + scores.sum(), xs)
        results.append([out.detach().numpy(), scores.detach().numpy(), *[g.numpy() for g in grads]])
    _assert_close(*results)


def test_predict_mc_samples_attention_dropout():
    inp = layers.Input((5, 8))
    out = layers.GlobalAveragePooling1D()(layers.MultiHeadAttention(2, 4, dropout=0.5)(inp, inp))
    model = lamina.Model(inp, layers.Dense(1)(out))
    x = RNG.normal(size=(4, 5, 8)).astype("float32")
    mc = model.predict_mc(x, samples=20)
    assert mc.std.max() > 0
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
