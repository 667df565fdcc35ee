"""InceptionTime, H-InceptionTime, LITE and their ensembles; multivariate and unequal-length data.

Oracles: the same networks written in Keras 3 (bench/keras_tsc.py, after aeon's builders, with
the fixed filters restated from the reference formulas), the parameter counts the papers give, a
padded series against the same series fed alone, and the members' own predictions for the
ensemble."""

import dataclasses
import json

import numpy as np
import pytest
from bench.keras_tsc import BUILDERS

import lamina
from lamina import tsc
from lamina.cli import main
from lamina.datasets import load_ucr
from lamina.models import Ensemble
from tests.parity import keras


def _randomize(keras_model, ours, rng):
    """The same random weights in both (the fixed filters stay as each model built them); BN
    scales and moving variances positive, so that no channel is silenced."""
    for layer in keras_model.layers:
        if layer.weights and "hand_crafted" not in layer.name:
            weights = [rng.uniform(0.5, 1.5, w.shape) if "norm" in layer.name and i in (0, 3)
                       else rng.normal(0.0, 0.2, w.shape) for i, w in enumerate(layer.get_weights())]
            weights = [w.astype("float32") for w in weights]
            layer.set_weights(weights)
            ours.get_layer(layer.name).set_weights(weights)


@pytest.mark.parametrize("name", ["inception", "h-inception", "lite"])
def test_architecture_matches_keras_build(name, rng):
    shape, k = (30, 2), 3
    ours = tsc.MODELS[name](shape, k)
    theirs = BUILDERS[name](keras, shape, k)
    assert ours.count_params() == theirs.count_params()
    _randomize(theirs, ours, rng)
    x = rng.standard_normal((4, *shape)).astype("float32")
    # The pooled features: a deep random network saturates the softmax, which would hide errors.
    got = lamina.Model(ours.inputs, ours.get_layer("gap").output).predict(x, verbose=0)
    want = keras.Model(theirs.input, theirs.layers[-2].output).predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def _trainable_without_head(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable - model.get_layer("classes").count_params()


def test_parameter_counts_match_the_papers():
    # LITE: "only 9,814 trainable parameters" (Ismail-Fawaz et al. 2023, abstract), for a
    # univariate series, without the classification layer; "2.34% of InceptionTime's" gives
    # InceptionTime's 420,192 (9,814 / 420,192 = 2.336%), which is the count of the reference
    # code's network (hfawaz/InceptionTime, kernel_size 41 - 1 = 40, 20, 10).
    assert _trainable_without_head(tsc.lite((150, 1), 2)) == 9814
    assert _trainable_without_head(tsc.inception((150, 1), 2)) == 420192
    # H-Inception adds 17 fixed filters (6 + 6 of lengths 2..64, 5 peaks of 6..96: 438 weights,
    # not trained): 17 channels more for the first module's BatchNormalization (gamma, beta) and
    # for the second module's bottleneck and max-pool Conv1D(32, 1).
    h = tsc.h_inception((150, 1), 2)
    assert sum(p.numel() for p in h.parameters() if not p.requires_grad) == 438
    assert _trainable_without_head(h) == 420192 + 2 * 17 + 2 * 17 * 32


# --------------------------------------------------------------------------- unequal lengths
SINGLE = ["fcn", "resnet", "mlp", "lstm_fcn", "inception", "h-inception", "lite"]


def _masked(name, shape, k):
    build = tsc.MODELS[name]
    return build(shape, k) if name == "mlp" else build(shape, k, masked=True)


def _random_weights(model, rng):
    """Random weights everywhere (fixed filters included), moving variances positive."""
    weights = [rng.uniform(0.5, 1.5, w.shape) if "moving_variance" in v.path else rng.normal(0, 0.3, w.shape)
               for v, w in zip(model.weights, model.get_weights())]
    model.set_weights([w.astype("float32") for w in weights])


def _features(model, name):
    """The model up to its classification layer's input: random weights saturate the softmax,
    which would hide a difference."""
    feature_layer = {"mlp": "drop3", "lstm_fcn": "merge"}.get(name, "gap")
    return lamina.Model(model.inputs, model.get_layer(feature_layer).output)


@pytest.mark.parametrize("name", SINGLE)
def test_padding_does_not_change_the_output(name, rng):
    """A zero-padded series gets, in inference, the output the same series gets alone (from the
    same weights: the MLP's and the LSTM's weights for the padded steps cut away, since those
    see the padding only as zero inputs)."""
    channels, k, full = 2, 3, 24
    padded_model = _masked(name, (full, channels), k)
    _random_weights(padded_model, rng)
    lengths = (24, 17, 9)
    series = [rng.standard_normal((n, channels)).astype("float32") for n in lengths]
    series[1][5] = 0.0  # a zero step inside a series is not padding
    series[2][-2:] = -np.abs(series[2][-2:]) - 0.5  # max-pooling at the end must not see zeros
    batch = np.zeros((len(series), full, channels), "float32")
    for i, s in enumerate(series):
        batch[i, :len(s)] = s
    got = _features(padded_model, name).predict(batch, verbose=0)
    for i, s in enumerate(series):
        alone = tsc.MODELS[name]((len(s), channels), k)
        alone.set_weights([w[tuple(slice(0, n) for n in a.shape)]
                           for w, a in zip(padded_model.get_weights(), alone.get_weights())])
        want = _features(alone, name).predict(s[None], verbose=0)[0]
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_without_masking_padding_changes_the_output(rng):
    """The control: the same comparison fails for a convolutional model built without masked."""
    unmasked = tsc.fcn((24, 2), 3)
    _random_weights(unmasked, rng)
    s = rng.standard_normal((9, 2)).astype("float32")
    alone = tsc.fcn((9, 2), 3)
    alone.set_weights(unmasked.get_weights())
    padded = np.zeros((1, 24, 2), "float32")
    padded[0, :9] = s
    assert np.abs(unmasked.predict(padded, verbose=0) - alone.predict(s[None], verbose=0)).max() > 1e-3


def _few(data, n=12):
    """The first n series of each split: enough to run a model, quick to train."""
    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n],
                               x_test=data.x_test[:n], y_test=data.y_test[:n],
                               lengths_train=data.lengths_train[:n], lengths_test=data.lengths_test[:n])


@pytest.fixture(scope="module")
def uea():
    return {name: _few(load_ucr(name)) for name in ("BasicMotions", "JapaneseVowels")}


@pytest.mark.parametrize("name", SINGLE)
def test_multivariate_datasets_run_through_every_model(name, uea):
    for data in uea.values():
        model, history, result = tsc.train_and_evaluate(name, data, epochs=1, verbose=0,
                                                        norm=None if name == "mlp" else "bn")
        assert np.isfinite(history.history["loss"][0]) and 0.0 <= result["test_accuracy"] <= 1.0
        assert model.predict(data.x_test, verbose=0).shape == (len(data.x_test), data.num_classes)


def test_build_model_masks_unequal_length_data_only(uea):
    def masked(model):
        return any(getattr(layer, "function", None) == "where" for layer in model._graph_layers)

    assert not uea["JapaneseVowels"].equal_length and uea["BasicMotions"].equal_length
    assert masked(tsc.build_model("lite", uea["JapaneseVowels"]))
    assert not masked(tsc.build_model("lite", uea["BasicMotions"]))
    assert all(masked(m) for m in tsc.build_model("litetime", uea["JapaneseVowels"]).members)


# --------------------------------------------------------------------------- ensembles
@pytest.fixture
def ensemble(rng):
    members = [tsc.fcn((20, 1), 3) for _ in range(3)]
    for m in members:
        _random_weights(m, rng)
    model = Ensemble(members, name="fcn_ensemble")
    model.compile(lamina.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_ensemble_predicts_the_mean_of_member_probabilities(ensemble, rng):
    x = rng.standard_normal((7, 20, 1)).astype("float32")
    y = np.arange(7) % 3
    members = [m.predict(x, verbose=0) for m in ensemble.members]
    mean = np.mean(members, axis=0)
    assert np.abs(members[0] - members[1]).max() > 1e-2  # distinct members, else the mean proves nothing
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), mean, rtol=1e-5, atol=1e-7)
    logs = ensemble.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(-np.log(mean[np.arange(7), y]).mean(), rel=1e-4)
    assert logs["accuracy"] == pytest.approx((mean.argmax(1) == y).mean())


def test_ensemble_fits_each_member_on_its_own(ensemble, rng):
    x = rng.standard_normal((16, 20, 1)).astype("float32")
    y = np.arange(16) % 3
    before = [m.get_weights() for m in ensemble.members]
    history = ensemble.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(history.members) == 3 and history.epoch == [0, 1]
    np.testing.assert_allclose(history.history["loss"],
                               np.mean([h.history["loss"] for h in history.members], axis=0))
    # Each member has its own optimizer, and each one trained.
    assert len({id(m.optimizer) for m in ensemble.members}) == 3
    for member, old in zip(ensemble.members, before):
        assert any(np.abs(a - b).max() > 0 for a, b in zip(member.get_weights(), old))


def test_ensemble_refuses_a_joint_step(ensemble, rng):
    with pytest.raises(NotImplementedError, match="members one after the other"):
        ensemble.train_on_batch(rng.standard_normal((4, 20, 1)).astype("float32"), np.arange(4) % 3)


def test_ensemble_save_load_round_trip(ensemble, tmp_path, rng):
    x = rng.standard_normal((5, 20, 1)).astype("float32")
    path = tmp_path / "ensemble.lamina"
    ensemble.save(path)
    loaded = lamina.load_model(path)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 3
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ensemble.predict(x, verbose=0))


def test_ensemble_rejects_non_models():
    with pytest.raises(ValueError, match="members"):
        Ensemble([])
    with pytest.raises(ValueError, match="members"):
        Ensemble([lamina.layers.Dense(2)])


# --------------------------------------------------------------------------- CLI
def test_cli_trains_litetime_member_by_member(tmp_path, capsys):
    assert main(["tsc", "ItalyPowerDemand", "--model", "litetime", "--epochs", "1",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "member 5/5" in out and "published: 0.967" in out
    results = json.loads((tmp_path / "ItalyPowerDemand_litetime_results.json").read_text())
    assert results["runs"][0]["best_epoch"] == [0] * 5
    loaded = lamina.load_model(tmp_path / "ItalyPowerDemand_litetime.lamina")
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 5


def test_protocol_of_the_inception_family():
    for name in ("inception", "inceptiontime", "h-inception", "h-inceptiontime", "lite", "litetime"):
        p = tsc.PROTOCOLS[name]
        assert (p.optimizer, p.learning_rate, p.epochs, p.reduce_factor, p.reduce_patience, p.min_lr) == \
            ("adam", 1e-3, 1500, 0.5, 50, 1e-4)
        assert (p.batch_size(1000), p.batch_size(50)) == (64, 50)
