import numpy as np
import pytest
import torch

from lamina import layers
from tests.parity import assert_parity, keras

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _randn(rng, *shapes):
    return [rng.standard_normal(s).astype("float32") for s in shapes]


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shapes", [
    [(3, 4), (3, 4)],
    [(2, 3, 4), (2, 1, 4), (2, 3, 1)],  # broadcasting (three inputs; Subtract takes two)
    [(2, 4), (2, 3, 4)],  # lower rank: Keras inserts the new axis after the batch axis
])
def test_elementwise_matches_keras(name, shapes, rng):
    if name == "Subtract":
        shapes = shapes[:2]
    xs = _randn(rng, *shapes)
    assert_parity(getattr(layers, name)(), getattr(keras.layers, name)(), xs)


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_matches_keras(axis, rng):
    xs = _randn(rng, (2, 3, 4), (2, 3, 4), (2, 3, 4))
    if axis == -1:
        xs[1] = rng.standard_normal((2, 3, 2)).astype("float32")
    else:
        xs[2] = rng.standard_normal((2, 5, 4)).astype("float32")
    assert_parity(layers.Concatenate(axis=axis), keras.layers.Concatenate(axis=axis), xs)


@pytest.mark.parametrize("axes,shapes", [
    (1, [(3, 4), (3, 4)]),
    (-1, [(2, 3, 4), (2, 5, 4)]),
    ((1, 2), [(2, 3, 5), (2, 4, 3)]),
    ((1, 1), [(2, 4), (2, 4, 3)]),
    ((2, 1), [(2, 3, 4), (2, 4)]),
    ((2, 3), [(2, 3, 4, 2), (2, 5, 3, 4)]),
])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_keras(axes, shapes, normalize, rng):
    xs = _randn(rng, *shapes)
    assert_parity(layers.Dot(axes, normalize=normalize), keras.layers.Dot(axes, normalize=normalize), xs)


@pytest.mark.parametrize("name,kwargs", [(n.lower(), {}) for n in ELEMENTWISE]
                         + [("concatenate", {"axis": 1}), ("dot", {"axes": 2})])
def test_functional_shortcuts_match_keras(name, kwargs, rng):
    xs = _randn(rng, (2, 3, 4), (2, 3, 4))
    got = getattr(layers, name)([torch.tensor(x) for x in xs], **kwargs)
    expected = getattr(keras.layers, name)([torch.tensor(x) for x in xs], **kwargs)
    np.testing.assert_allclose(got.numpy(), np.asarray(expected), atol=1e-6)


@pytest.mark.parametrize("name,kwargs,shapes", [
    ("Add", {}, [(None, None, 4), (None, 1, 4)]),
    ("Maximum", {}, [(None, 4), (None, 3, 4)]),
    ("Concatenate", {"axis": 1}, [(None, None, 4), (None, 2, 4)]),
    ("Concatenate", {}, [(None, 3, 4), (None, 3, 2)]),
    ("Dot", {"axes": (1, 2)}, [(None, 3, 5), (None, 4, 3)]),
    ("Dot", {"axes": 1}, [(None, 4), (None, 4)]),
])
def test_output_shape_matches_keras(name, kwargs, shapes):
    got = getattr(layers, name)(**kwargs).compute_output_shape(shapes)
    expected = getattr(keras.layers, name)(**kwargs).compute_output_shape(shapes)
    assert tuple(got) == tuple(expected)


def test_merges_in_a_functional_model(rng):
    a, b = layers.Input((3, 4)), layers.Input((3, 4))
    merged = layers.concatenate([layers.add([a, b]), layers.Subtract()([a, b]), layers.multiply([a, b])])
    out = layers.Dot(axes=(2, 2), normalize=True)([merged, merged])
    assert merged.shape == (None, 3, 12) and out.shape == (None, 3, 3)
    import lamina

    model = lamina.Model([a, b], out)
    xa, xb = (torch.tensor(x) for x in _randn(rng, (2, 3, 4), (2, 3, 4)))
    cosine = model([xa, xb])
    torch.testing.assert_close(torch.diagonal(cosine, dim1=1, dim2=2), torch.ones(2, 3))


def test_incompatible_shapes_name_the_layer():
    with pytest.raises(ValueError, match=r"Add 'sum'.*incompatible shapes \(3, 4\) and \(3, 5\)"):
        layers.Add(name="sum")([torch.zeros(2, 3, 4), torch.zeros(2, 3, 5)])
    with pytest.raises(ValueError, match="Maximum 'maximum'.*incompatible"):
        layers.Maximum()([layers.Input((4,)), layers.Input((5,))])


def test_different_batch_sizes_are_an_error():
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Add()([torch.zeros(1, 4), torch.zeros(3, 4)])
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Dot(axes=1)([torch.zeros(1, 4), torch.zeros(3, 4)])


def test_a_built_merge_still_checks_each_call():
    layer = layers.Add(name="sum")
    layer([torch.zeros(2, 4), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="Add 'sum'.*incompatible"):
        layer([torch.zeros(2, 4), torch.zeros(2, 3)])


def test_subtract_takes_exactly_two_inputs():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"Subtract 'subtract'.*exactly 2 inputs\. Received 3"):
        layers.Subtract()([x, x, x])


@pytest.mark.parametrize("cls", ["Add", "Concatenate", "Average"])
def test_a_single_tensor_is_not_a_list(cls):
    with pytest.raises(ValueError, match=rf"{cls} '.*' must be called on a list of tensors"):
        getattr(layers, cls)()(torch.zeros(2, 3))


def test_concatenate_shape_errors():
    with pytest.raises(ValueError, match=r"Concatenate 'join'.*axis 1 differs"):
        layers.Concatenate(name="join")([torch.zeros(2, 3, 4), torch.zeros(2, 5, 4)])
    with pytest.raises(ValueError, match="same rank"):
        layers.Concatenate()([torch.zeros(2, 3, 4), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="axis"):
        layers.Concatenate(axis="features")


def test_dot_errors():
    with pytest.raises(ValueError, match=r"Dot 'dot'.*axis 1 of the first input has 4 and axis 1 of the "
                                         r"second has 5"):
        layers.Dot(axes=1)([torch.zeros(2, 4), torch.zeros(2, 5)])
    with pytest.raises(ValueError, match="non-batch axis"):
        layers.Dot(axes=0)([torch.zeros(2, 4), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Dot(axes=1)([torch.zeros(2, 4)] * 3)
    with pytest.raises(ValueError, match="pair of ints"):
        layers.Dot(axes=(1, 2, 3))


def test_config_round_trips_and_reads_keras_config():
    for name, kwargs in [("Add", {}), ("Subtract", {}), ("Concatenate", {"axis": 1}),
                         ("Dot", {"axes": (1, 2), "normalize": True})]:
        layer = getattr(layers, name)(**kwargs)
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
        keras_config = getattr(keras.layers, name)(**kwargs).get_config()
        restored = getattr(layers, name).from_config(keras_config)
        assert {k: restored.get_config()[k] for k in kwargs} == {k: tuple(v) if isinstance(v, list) else v
                                                                 for k, v in kwargs.items()}


# ----------------------------------------------------------------- masks, against Keras


def _masked_pair(rng, keras_side):
    """Two (2, 4, 3) tensors from Embedding(mask_zero=True) with different padded steps."""
    ids = [np.array([[1, 2, 0, 0], [3, 0, 4, 0]]), np.array([[5, 0, 6, 0], [7, 0, 0, 8]])]
    outs = []
    for idx in ids:
        table = rng.standard_normal((10, 3)).astype("float32")
        if keras_side:
            layer = keras.layers.Embedding(10, 3, mask_zero=True)
            layer.build((2, 4))
        else:
            layer = layers.Embedding(10, 3, mask_zero=True)
            layer.build_from_shape((2, 4))
        layer.set_weights([table])
        outs.append(layer(torch.tensor(idx)))
    return outs


@pytest.mark.parametrize("name", ELEMENTWISE + ["Concatenate"])
def test_masks_merge_as_keras(name):
    lam_in = _masked_pair(np.random.default_rng(1), keras_side=False)
    ker_in = _masked_pair(np.random.default_rng(1), keras_side=True)
    out = getattr(layers, name)()(lam_in)
    expected = getattr(keras.layers, name)()(ker_in)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(out._lamina_mask.numpy(), expected._keras_mask.numpy())


@pytest.mark.parametrize("name", ["Maximum", "Multiply"])
def test_one_masked_input_merges_as_keras(name):
    lam_a, _ = _masked_pair(np.random.default_rng(2), keras_side=False)
    ker_a, _ = _masked_pair(np.random.default_rng(2), keras_side=True)
    plain = torch.randn(2, 4, 3)
    out = getattr(layers, name)()([plain, lam_a])
    expected = getattr(keras.layers, name)()([plain, ker_a])
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-6)
    assert getattr(out, "_lamina_mask", None) is None


def test_concatenate_along_time_joins_masks_as_keras():
    lam_in = _masked_pair(np.random.default_rng(3), keras_side=False)
    ker_in = _masked_pair(np.random.default_rng(3), keras_side=True)
    lam_in[1] = lam_in[1] + 0  # an unmasked input alongside a masked one
    ker_in[1] = ker_in[1] + 0
    out = layers.Concatenate(axis=1)(lam_in)
    expected = keras.layers.Concatenate(axis=1)(ker_in)
    np.testing.assert_array_equal(out._lamina_mask.numpy(), expected._keras_mask.numpy())


def test_dot_drops_masks():
    a, b = _masked_pair(np.random.default_rng(4), keras_side=False)
    assert getattr(layers.Dot(axes=2)([a, b]), "_lamina_mask", None) is None
