"""Optimizers: Keras' names and default hyperparameters, and the same update as Keras."""

import numpy as np
import pytest
import torch

import lamina
from lamina import optimizers
from tests.parity import keras

NAMES = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "adamax"]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_keras_defaults(name):
    ours = optimizers.get(name).get_config()
    theirs = keras.optimizers.get(name).get_config()
    for key, value in ours.items():
        if key in theirs and key != "name" and value is not None:
            assert value == pytest.approx(theirs[key]), f"{name}.{key}: {value} vs Keras {theirs[key]}"
    assert ours["learning_rate"] == pytest.approx(theirs["learning_rate"])


# Keras adds epsilon after bias correction of sqrt(v) in Adam-type optimizers and inside the
# square root in Adagrad; torch adds it elsewhere. With lr-sized steps the difference is ~eps.
@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad", "adamax", "adamw"])
def test_three_steps_match_keras(name):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3)).astype("float32")
    grads = [rng.standard_normal((4, 3)).astype("float32") for _ in range(3)]
    kv = keras.Variable(w0)
    kopt = keras.optimizers.get(name)
    for g in grads:
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), kv)])
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = optimizers.get(name)
    opt.build([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), keras.ops.convert_to_numpy(kv.value), atol=2e-6)


def test_learning_rate_is_settable_after_build():
    p = torch.nn.Parameter(torch.ones(2))
    opt = optimizers.Adam(0.01)
    opt.build([p])
    opt.learning_rate = 0.5
    assert opt.torch_optimizer.param_groups[0]["lr"] == 0.5 and opt.learning_rate == 0.5


def test_clipnorm_and_global_clipnorm():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = optimizers.SGD(1.0, global_clipnorm=1.0)
    opt.build([p])
    p.grad = torch.tensor([3.0, 4.0])
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [-0.6, -0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_torch_optimizer_in_compile_is_explained():
    model = lamina.Sequential([lamina.layers.Dense(1)])
    with pytest.raises(TypeError, match="lamina optimizer or its name"):
        model.compile(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1))
