"""Keras' preprocessing Normalization: adapt (arrays, batches, DataLoaders), fixed statistics and
invert, against Keras 3; and lamina's refusal to run before it has statistics."""

import numpy as np
import pytest
import torch

from lamina import layers
from tests.parity import assert_parity, keras


@pytest.mark.parametrize("shape, axis",
                         [((20, 5), -1), ((12, 4, 3), None), ((6, 4, 3), (1, 2)), ((8, 4, 3), 1)])
@pytest.mark.parametrize("invert", [False, True])
def test_adapted_statistics_and_outputs_match_keras(shape, axis, invert, rng):
    data = rng.normal(3.0, 2.0, shape).astype("float32")
    k_layer = keras.layers.Normalization(axis=axis, invert=invert)
    k_layer.adapt(data)
    layer = layers.Normalization(axis=axis, invert=invert)
    layer.adapt(data)
    for mine, theirs in zip(layer.get_weights()[:2], k_layer.get_weights()[:2]):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-6)
    x = rng.normal(3.0, 2.0, shape).astype("float32")
    copy = layers.Normalization(axis=axis, invert=invert)
    copy.build_from_shape(shape)  # set_weights, not a call, gives it its statistics
    assert_parity(copy, k_layer, x)


@pytest.mark.parametrize("mean, variance", [(3.0, 2.0), ([1.0, 2.0, 3.0], [4.0, 0.25, 1.0])])
def test_fixed_statistics_match_keras(mean, variance, rng):
    x = rng.standard_normal((5, 3)).astype("float32")
    for invert in (False, True):
        k_layer = keras.layers.Normalization(mean=mean, variance=variance, invert=invert)
        expected = k_layer(torch.as_tensor(x)).numpy()
        out = layers.Normalization(mean=mean, variance=variance, invert=invert)(torch.as_tensor(x))
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_adapt_over_batches_equals_adapt_over_the_whole_array(rng):
    data = rng.normal(1e4, 3.0, (103, 4))  # a large mean: the merge must not lose the variance
    whole = layers.Normalization()
    whole.adapt(data)
    batched = layers.Normalization()
    batched.adapt([data[i:i + 10] for i in range(0, 103, 10)])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(data), torch.zeros(103)), batch_size=16)
    from_loader = layers.Normalization()
    from_loader.adapt(loader)
    for layer in (batched, from_loader):
        np.testing.assert_allclose(layer.mean.numpy(), data.mean(0), rtol=1e-7)
        np.testing.assert_allclose(layer.variance.numpy(), data.var(0), rtol=1e-5)
        assert layer.count.item() == 103
    np.testing.assert_allclose(whole.variance.numpy(), data.var(0), rtol=1e-5)


def test_gradients_flow_to_the_input():
    layer = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 16.0])
    x = torch.ones(3, 2, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.5, 0.25]] * 3))


def test_refuses_to_run_without_statistics_and_accepts_loaded_ones():
    layer = layers.Normalization(name="norm")
    with pytest.raises(ValueError, match=r"'norm' has no statistics yet.*adapt"):
        layer(torch.zeros(2, 3))
    layer.set_weights([np.ones(3), np.full(3, 4.0), np.array(0)])
    torch.testing.assert_close(layer(torch.full((1, 3), 3.0)), torch.ones(1, 3))
    loaded = layers.Normalization()
    loaded.build_from_shape((None, 3))
    loaded.load_state_dict(layer.state_dict())
    torch.testing.assert_close(loaded(torch.full((1, 3), 3.0)), torch.ones(1, 3))


def test_argument_and_data_errors():
    with pytest.raises(ValueError, match="must be given together"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=1.0)
    with pytest.raises(ValueError, match=r"`mean` of shape \(2,\) does not broadcast.*\(3,\)"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="adapt\\(\\) received no data"):
        layers.Normalization().adapt([])
    with pytest.raises(TypeError, match="batch of type float"):
        layers.Normalization().adapt([1.0, 2.0])
    layer = layers.Normalization(name="norm2")
    layer.adapt(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"'norm2'.*axis 1.*value 3"):
        layer.adapt(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="adapt\\(\\) would ignore them"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(np.zeros((2, 2)))


def test_config_round_trip():
    layer = layers.Normalization(axis=(1, 2), mean=[[1.0]], variance=[[2.0]], invert=True)
    config = layer.get_config()
    assert config["mean"] == [[1.0]] and config["axis"] == (1, 2)
    assert layers.Normalization.from_config(config).get_config() == config
