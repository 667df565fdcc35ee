"""Rescaling, Resizing, CenterCrop and the random augmentations against Keras 3 (torch backend):
deterministic layers to 1e-5; augmentations with degenerate ranges (a fixed 90° turn, a fixed
zoom) to 1e-5, identity at inference, and seeded randomness."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lamina  # noqa: E402
from lamina import layers  # noqa: E402

IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 9, 12, 3)).astype("float32")


def _both(name, *args, images=IMAGES, **kwargs):
    k = np.asarray(getattr(keras.layers, name)(*args, **kwargs)(images))
    lam = getattr(layers, name)(*args, **kwargs)(images)
    assert isinstance(lam, torch.Tensor)
    return k, lam.numpy()


@pytest.mark.parametrize("name, args, kwargs", [
    ("Rescaling", (1 / 255,), {}),
    ("Rescaling", (1 / 127.5,), {"offset": -1}),
    ("Resizing", (5, 7), {}),
    ("Resizing", (20, 16), {"interpolation": "nearest"}),
    ("Resizing", (6, 6), {"crop_to_aspect_ratio": True}),
    ("Resizing", (4, 10), {"interpolation": "bicubic"}),
    ("Resizing", (6, 6), {"pad_to_aspect_ratio": True, "fill_value": 3.0}),
    ("Resizing", (5, 3), {"antialias": True}),
    ("CenterCrop", (5, 8), {}),
    ("CenterCrop", (12, 6), {}),  # taller than the image: Keras resizes instead
])
def test_deterministic_layers_match_keras(name, args, kwargs):
    k, lam = _both(name, *args, **kwargs)
    assert k.shape == lam.shape
    np.testing.assert_allclose(lam, k, atol=1e-4, rtol=1e-5)
    k1, lam1 = _both(name, *args, images=IMAGES[0], **kwargs)  # one image, no batch axis
    np.testing.assert_allclose(lam1, k1, atol=1e-4, rtol=1e-5)


def test_symbolic_shapes_and_a_model():
    inp = lamina.Input((9, 12, 3))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Resizing(6, 8)(x)
    out = layers.CenterCrop(4, 4)(x)
    assert out.shape == (None, 4, 4, 3)
    assert lamina.Model(inp, out).predict(IMAGES, verbose=0).shape == (2, 4, 4, 3)


@pytest.mark.parametrize("name, args", [
    ("RandomRotation", ((0.25, 0.25),)),
    ("RandomRotation", ((-0.5, -0.5),)),
    ("RandomZoom", ((-0.5, -0.5),)),
    ("RandomZoom", ((-0.25, -0.25), (-0.5, -0.5))),
])
def test_degenerate_augmentations_match_keras(name, args):
    square = IMAGES[:, :9, :9]
    k, lam = _both(name, *args, images=square)
    np.testing.assert_allclose(lam, k, atol=1e-3)


def test_flip_modes_and_identity_at_inference():
    copies = torch.tensor(np.repeat(IMAGES[:1], 64, 0))
    flipped = layers.RandomFlip("horizontal", seed=3)(copies)
    mirrored = [torch.equal(o, copies[0].flip(1)) for o in flipped]
    # about half the images are mirrored left to right, the others kept as they were
    assert 10 < sum(mirrored) < 54 and all(m or torch.equal(o, copies[0]) for m, o in zip(mirrored, flipped))
    both = layers.RandomFlip(seed=5)(torch.tensor(np.repeat(IMAGES[:1], 64, 0)))
    turned = torch.tensor(IMAGES[0]).flip(0).flip(1)
    counts = [torch.equal(o, turned) for o in both]
    assert 10 < sum(counts) < 54 and all(c or torch.equal(o, torch.tensor(IMAGES[0]))
                                         for c, o in zip(counts, both))
    model = lamina.Sequential([lamina.Input((9, 12, 3)), layers.RandomFlip(),
                               layers.RandomRotation(0.2), layers.RandomZoom(0.3)])
    np.testing.assert_allclose(model.predict(IMAGES, verbose=0), IMAGES)


def test_seeded_augmentation_repeats():
    a = layers.RandomRotation(0.1, seed=1)(torch.tensor(IMAGES))
    b = layers.RandomRotation(0.1, seed=1)(torch.tensor(IMAGES))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, torch.tensor(IMAGES))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="interpolation"):
        layers.Resizing(4, 4, interpolation="lanczos9")
    with pytest.raises(ValueError, match="mode"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="rank 4"):
        layers.Resizing(4, 4)(torch.ones(2, 3))
