"""Learning-rate schedules: Keras 3's values step by step, configs, and the rate fit applies."""

import numpy as np
import pytest

import lamina
from lamina.optimizers import schedules
from tests.parity import keras

CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.9)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.9, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 25], values=[1.0, 0.5, 0.1])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=20, end_learning_rate=0.01, power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=20, power=0.5, cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=30, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=30, warmup_target=0.2, warmup_steps=10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7, t_mul=2.0, m_mul=0.8,
                                 alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7, t_mul=1.0)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_values_configs_and_serialization_match_keras(name, kwargs):
    ours, theirs = getattr(schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)
    steps = range(120)
    np.testing.assert_allclose([ours(s) for s in steps], [float(theirs(s)) for s in steps],
                               rtol=1e-6, atol=2e-7)  # Keras computes in float32
    assert ours.get_config() == theirs.get_config()
    assert schedules.serialize(ours) == keras.optimizers.schedules.serialize(theirs)
    back = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="values"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "CosineDecayy", "config": {}})


def test_custom_schedule_subclass_is_accepted_by_optimizers():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.4 * 0.5 ** step

        def get_config(self):
            return {}

    opt = lamina.optimizers.Adam(Halving())
    assert opt.learning_rate == pytest.approx(0.4)
    assert opt.get_config()["learning_rate"]["class_name"] == "Halving"


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad", "adadelta", "nadam", "adamax",
                                  "adamw"])
def test_every_optimizer_reads_and_refuses_overwriting_a_schedule(name):
    lr = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = type(lamina.optimizers.get(name))(learning_rate=lr)
    assert opt.learning_rate == pytest.approx(0.1)
    opt.iterations = 4
    assert opt.learning_rate == pytest.approx(0.025)
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.01
    config = opt.get_config()
    assert config["learning_rate"]["class_name"] == "ExponentialDecay"
    assert type(opt).from_config(config).learning_rate == pytest.approx(0.1)


def _fit_and_record(lib, schedule_cls, optimizer, weights, x, y):
    model = lib.Sequential([lib.layers.Input((3,)), lib.layers.Dense(2)])
    model.set_weights(weights)
    seen = []
    record = lib.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(model.optimizer.learning_rate)))
    lr = schedule_cls(0.2, decay_steps=3, alpha=0.1, warmup_target=0.5, warmup_steps=2)
    name, kwargs = optimizer
    model.compile(optimizer=getattr(lib.optimizers, name)(lr, **kwargs), loss="mse")
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[record])
    return seen, [np.asarray(w) for w in model.get_weights()]


# Momentum is where torch and Keras place the rate differently (see Optimizer._rescale_momentum).
@pytest.mark.parametrize("optimizer", [("SGD", {}), ("SGD", {"momentum": 0.5}),
                                       ("SGD", {"momentum": 0.9, "nesterov": True}),
                                       ("RMSprop", {"momentum": 0.5}), ("Adam", {})], ids=str)
def test_fit_applies_the_scheduled_rate_of_each_step_as_keras(optimizer):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 3)).astype("float32"), rng.standard_normal((12, 2)).astype("float32")
    weights = [rng.standard_normal((3, 2)).astype("float32"), np.zeros(2, "float32")]
    k_lrs, k_weights = _fit_and_record(keras, keras.optimizers.schedules.CosineDecay, optimizer,
                                       weights, x, y)
    l_lrs, l_weights = _fit_and_record(lamina, schedules.CosineDecay, optimizer, weights, x, y)
    np.testing.assert_allclose(l_lrs, k_lrs, rtol=1e-6)
    assert len(set(np.round(l_lrs, 6))) > 3  # warmup, decay and the floor were all visited
    for ours, theirs in zip(l_weights, k_weights):
        # Adam/RMSprop place epsilon differently from torch: ~1e-5 apart at these rates.
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-5)


def test_a_schedule_is_saved_with_the_model_and_resumes_from_the_step_count(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 3)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
    model = lamina.Sequential([lamina.layers.Input((3,)), lamina.layers.Dense(1)])
    model.compile(lamina.optimizers.SGD(schedules.ExponentialDecay(0.1, 5, 0.5)), "mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.lamina")
    loaded = lamina.load_model(tmp_path / "m.lamina")
    assert isinstance(loaded.optimizer._schedule, schedules.ExponentialDecay)
    assert loaded.optimizer.iterations == 4
    assert loaded.optimizer.learning_rate == pytest.approx(0.1 * 0.5 ** (4 / 5))


def test_a_rate_changed_between_fits_moves_momentum_sgd_as_keras():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 3)).astype("float32"), rng.standard_normal((12, 2)).astype("float32")
    weights = [rng.standard_normal((3, 2)).astype("float32"), np.zeros(2, "float32")]
    results = []
    for lib in (keras, lamina):
        model = lib.Sequential([lib.layers.Input((3,)), lib.layers.Dense(2)])
        model.set_weights(weights)
        model.compile(optimizer=lib.optimizers.SGD(0.1, momentum=0.9), loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        model.optimizer.learning_rate = 0.02  # as ReduceLROnPlateau does
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        results.append([np.asarray(w) for w in model.get_weights()])
    for theirs, ours in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
