"""lamina.random: shapes, dtypes, distributions (moments and ranges against their formulas) and
Keras' seed semantics (an int seed repeats, a SeedGenerator advances, None uses torch's RNG)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina
from lamina import random


def test_int_seed_repeats_and_seed_generator_advances_reproducibly():
    assert torch.equal(random.normal((3, 4), seed=7), random.normal((3, 4), seed=7))
    assert not torch.equal(random.normal((3, 4), seed=7), random.normal((3, 4), seed=8))
    first, second = random.SeedGenerator(42), random.SeedGenerator(42)
    a, b = random.uniform((5,), seed=first), random.uniform((5,), seed=first)
    assert not torch.equal(a, b)
    assert torch.equal(a, random.uniform((5,), seed=second))
    assert torch.equal(b, random.uniform((5,), seed=second))


def test_no_seed_uses_torch_global_generator():
    lamina.utils.set_random_seed(3)
    a = random.normal((4,))
    lamina.utils.set_random_seed(3)
    assert torch.equal(a, random.normal((4,)))
    assert not torch.equal(a, random.normal((4,)))
    lamina.utils.set_random_seed(3)
    drawn = random.SeedGenerator().initial_seed  # a SeedGenerator without seed draws one there
    lamina.utils.set_random_seed(3)
    assert random.SeedGenerator().initial_seed == drawn


@pytest.mark.parametrize("fn, kwargs, mean, var", [
    (random.normal, {"mean": 2.0, "stddev": 3.0}, 2.0, 9.0),
    (random.uniform, {"minval": -1.0, "maxval": 3.0}, 1.0, 16 / 12),
    # A standard normal truncated to +-2: variance 1 - 2*2*phi(2) / (Phi(2) - Phi(-2)).
    (random.truncated_normal, {"stddev": 2.0}, 0.0, 4 * (1 - 4 * 0.0539910 / 0.9544997)),
])
def test_float_distributions_moments(fn, kwargs, mean, var):
    x = fn((200_000,), seed=1, **kwargs).double()
    assert abs(x.mean().item() - mean) < 0.03
    assert abs(x.var().item() / var - 1) < 0.02


def test_ranges_dtypes_and_shapes():
    assert random.normal((2, 3)).dtype == torch.float32
    assert random.normal((2, 3), dtype="float64").dtype == torch.float64
    u = random.uniform((1000,), minval=2.0, maxval=3.0, seed=0)
    assert u.min() >= 2.0 and u.max() < 3.0
    t = random.truncated_normal((10_000,), mean=1.0, stddev=0.5, seed=0)
    assert (t - 1.0).abs().max() <= 1.0
    r = random.randint((4, 5), 2, 6, seed=0)
    assert r.shape == (4, 5) and r.dtype == torch.int32 and r.min() >= 2 and r.max() < 6
    assert set(random.randint((1000,), 0, 3, seed=0).tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="integer dtype"):
        random.randint((2,), 0, 3, dtype="float32")
    with pytest.raises(ValueError, match="seed"):
        random.normal((2,), seed="x")


def test_categorical_follows_softmax_of_logits():
    logits = torch.log(torch.tensor([[0.2, 0.8], [0.9, 0.1]]))
    samples = random.categorical(logits, 20_000, seed=0)
    assert samples.shape == (2, 20_000) and samples.dtype == torch.int32
    np.testing.assert_allclose(samples.float().mean(dim=1).numpy(), [0.8, 0.1], atol=0.015)


def test_dropout_zeroes_at_rate_scales_the_rest_and_shares_noise():
    x = torch.ones(100, 1000)
    out = random.dropout(x, 0.3, seed=0)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))
    shared = random.dropout(x, 0.5, noise_shape=(None, 1), seed=0)
    assert ((shared == 0).all(dim=1) | (shared != 0).all(dim=1)).all()


def test_shuffle_permutes_along_axis():
    x = torch.arange(12).reshape(3, 4)
    out = random.shuffle(x, axis=1, seed=3)
    assert torch.equal(out.sort(dim=1).values, x)
    assert torch.equal(out - out[:1], x - x[:1])  # every row moved the same way
    assert not torch.equal(out, x)


def test_gamma_binomial_beta_moments():
    g = random.gamma((100_000,), 3.0, seed=0)
    assert abs(g.mean().item() - 3.0) < 0.05 and abs(g.var().item() - 3.0) < 0.1
    b = random.binomial((100_000,), 10, 0.3, seed=0)
    assert abs(b.mean().item() - 3.0) < 0.03
    be = random.beta((100_000,), 2.0, 3.0, seed=0)
    assert abs(be.mean().item() - 0.4) < 0.01 and be.min() > 0 and be.max() < 1
