"""Optimizers: Keras' names and default hyperparameters, and the same update as Keras."""

import copy
import math

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


def _adam_run(steps, make_optimizer, reload_at=None, lr_change_at=None):
    """Weights after `steps` Adam updates of three weights from fixed gradients; optionally the
    optimizer state saved one step before `reload_at` is loaded back there, and the learning
    rate halved at `lr_change_at`."""
    rng = np.random.default_rng(1)
    params = [torch.nn.Parameter(torch.tensor(rng.standard_normal(s).astype("float32")))
              for s in [(5, 4), (4,), (3, 2, 2)]]
    grads = [[torch.tensor(rng.standard_normal(tuple(p.shape)).astype("float32")) for p in params]
             for _ in range(steps)]
    step, saved = make_optimizer(params), None
    for i, gs in enumerate(grads):
        if reload_at is not None and i == reload_at - 1:
            saved = step("state")
        if reload_at is not None and i == reload_at:
            step("load", saved)
        if lr_change_at is not None and i == lr_change_at:
            step("lr", 0.0005)
        for p, g in zip(params, gs):
            p.grad = g.clone()
        step("step")
    return [p.detach().clone() for p in params]


def _lamina_adam(params):
    opt = optimizers.Adam()
    opt.build(params)

    def act(what, value=None):
        if what == "step":
            opt.step()
            opt.zero_grad()
        elif what == "state":
            return copy.deepcopy(opt.torch_optimizer.state_dict())
        elif what == "load":
            opt.torch_optimizer.load_state_dict(value)
        elif what == "lr":
            opt.learning_rate = value
    return act


def _torch_adam(params):
    opt = torch.optim.Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-7, fused=True)
    steps = [0]

    def act(what, value=None):
        if what == "step":
            steps[0] += 1  # Keras' epsilon in torch's form (see optimizers._AdamFamily)
            opt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - 0.999 ** steps[0])
            opt.step()
            opt.zero_grad(set_to_none=True)
        elif what == "state":
            return copy.deepcopy(opt.state_dict())
        elif what == "load":
            opt.load_state_dict(value)
        elif what == "lr":
            for g in opt.param_groups:
                g["lr"] = value
    return act


@pytest.mark.parametrize("options", [{}, {"reload_at": 4}, {"lr_change_at": 3}])
def test_direct_fused_adam_step_equals_torchs_step_bitwise(options, monkeypatch):
    """lamina's Adam calls torch's fused kernel directly after the first step: the weights equal
    torch's own fused Adam step by step, through a state reload (a loaded state's new moment
    tensors must be picked up) and a learning-rate change; torch's own step ran only the first
    time, which created the state."""
    torch_steps = []
    real = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step",
                        lambda self, *a, **k: torch_steps.append(1) or real(self, *a, **k))
    ours = _adam_run(6, _lamina_adam, **options)
    assert len(torch_steps) == 1
    monkeypatch.setattr(torch.optim.Adam, "step", real)
    theirs = _adam_run(6, _torch_adam, **options)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_direct_adam_step_skips_weights_without_gradients_as_torch():
    """A weight with no gradient this step is left alone by torch's step, which lamina then
    takes; the other weight is updated as torch's fused Adam updates it."""
    ours = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    theirs = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    opt = optimizers.Adam()
    opt.build(ours)
    reference = torch.optim.Adam(theirs, lr=0.001, eps=1e-7, fused=True)
    for i in range(3):
        ours[0].grad, theirs[0].grad = torch.full((3,), 1.0 + i), torch.full((3,), 1.0 + i)
        opt.step()
        opt.zero_grad()
        reference.step()
        reference.zero_grad(set_to_none=True)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    assert torch.equal(ours[1].detach(), torch.ones(2))


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_zero_grad_clears_every_group_as_torchs_set_to_none(name):
    """zero_grad leaves every weight the torch optimizer holds, an added group's too, with no
    gradient, as torch's zero_grad(set_to_none=True) does."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = optimizers.get(name)
    opt.build([a])
    opt.torch_optimizer.add_param_group({"params": [b]})
    for p in (a, b):
        p.grad = torch.ones_like(p)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


# A large epsilon and small gradients make where epsilon enters the update visible: torch's
# placement alone is off by ~1e-2 here.
@pytest.mark.parametrize("name, options", [
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("AdamW", {}), ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9}), ("RMSprop", {"centered": True}),
])
def test_epsilon_enters_the_update_where_keras_puts_it(name, options):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((4, 3)).astype("float32")
    grads = [(rng.standard_normal((4, 3)) * 0.05).astype("float32") for _ in range(12)]
    kv = keras.Variable(w0)
    kopt = getattr(keras.optimizers, name)(learning_rate=0.05, epsilon=0.1, **options)
    for g in grads:
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), kv)])
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = getattr(optimizers, name)(learning_rate=0.05, epsilon=0.1, **options)
    opt.build([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), keras.ops.convert_to_numpy(kv.value), rtol=1e-5, atol=1e-6)


def test_iterations_reads_as_keras_variable():
    kv, kopt = keras.Variable(np.ones(2, "float32")), keras.optimizers.SGD()
    p = torch.nn.Parameter(torch.ones(2))
    opt = optimizers.SGD()
    opt.build([p])
    for _ in range(3):
        kopt.apply_gradients([(keras.ops.ones(2), kv)])
        p.grad = torch.ones(2)
        opt.step()
    assert int(opt.iterations.numpy()) == int(kopt.iterations.numpy()) == 3
    assert int(opt.iterations.value) == 3 and opt.iterations + 1 == 4
