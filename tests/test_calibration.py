"""Calibration: the ECE metric against a hand computation, torchmetrics and a float64 numpy
restatement; NLL by hand; temperature scaling against the known temperature of synthetic data and a
brute-force grid search; the reliability diagram's bars against the restatement."""

import numpy as np
import pytest
import torch

import lamina
from lamina import calibration, layers, metrics

# Five samples, three classes, exact binary fractions so the bin edges 0.25/0.5/0.75 are hit
# exactly: bins (0, .25], (.25, .5], (.5, .75], (.75, 1].
HAND_P = np.array([[0.75, 0.25, 0.0],       # right at .75  -> bin 2 (edge belongs to the lower bin)
                   [0.5, 0.25, 0.25],       # wrong at .5   -> bin 1 (predicts 0, label 1)
                   [1.0, 0.0, 0.0],         # right at 1    -> bin 3
                   [0.125, 0.875, 0.0],     # wrong at .875 -> bin 3
                   [0.375, 0.3125, 0.3125]], dtype="float32")  # right at .375 -> bin 1
HAND_Y = np.array([0, 1, 0, 0, 0])
# bin 1: |1 - (.5 + .375)| = .125; bin 2: |1 - .75| = .25; bin 3: |1 - (1 + .875)| = .875; / 5
HAND_ECE = (0.125 + 0.25 + 0.875) / 5
HAND_W = np.array([1, 2, 1, 1, 2], dtype="float32")
# weighted: bin 1: |2 - (2 * .5 + 2 * .375)| = .25; bin 2: .25; bin 3: .875; / 7
HAND_ECE_WEIGHTED = (0.25 + 0.25 + 0.875) / 7


def numpy_ece(y, p, num_bins=15, w=None):
    """Restatement in float64: top-label confidence, bins (lo, hi], weighted |acc - conf| per bin."""
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(p)) if w is None else np.asarray(w, dtype=np.float64)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0, 1, num_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else conf <= hi
        total += abs((w * correct)[inside].sum() - (w * conf)[inside].sum())
    return total / w.sum()


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sample_labels(rng, p):
    """One label per row drawn from the row's probabilities."""
    return (p.cumsum(-1) < rng.random((len(p), 1))).sum(-1).clip(max=p.shape[-1] - 1)


def test_ece_by_hand_and_its_bins():
    m = metrics.ExpectedCalibrationError(num_bins=4)
    m.update_state(HAND_Y[:2], HAND_P[:2])
    m.update_state(HAND_Y[2:], HAND_P[2:])  # accumulates over batches
    assert float(m.result()) == pytest.approx(HAND_ECE, abs=1e-7)
    bins = m.bins()
    np.testing.assert_allclose(bins["edges"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(bins["weight"], [0, 2, 1, 2])
    np.testing.assert_allclose(bins["confidence"][1:], [0.4375, 0.75, 0.9375])
    np.testing.assert_allclose(bins["accuracy"][1:], [0.5, 1.0, 0.5])
    assert np.isnan(bins["confidence"][0]) and np.isnan(bins["accuracy"][0])
    m.reset_state()
    m.update_state(np.eye(3)[HAND_Y], HAND_P, sample_weight=HAND_W)  # one-hot labels
    assert float(m.result()) == pytest.approx(HAND_ECE_WEIGHTED, abs=1e-7)
    ece = calibration.expected_calibration_error(HAND_Y[:, None], HAND_P, num_bins=4)
    assert ece == pytest.approx(HAND_ECE)


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_ece_matches_torchmetrics(rng, classes):
    torchmetrics = pytest.importorskip("torchmetrics")
    z = rng.standard_normal((600, classes)) * 2.5
    p = torch.softmax(torch.tensor(z), -1).float()  # continuous: no confidence on a bin edge or at 1
    y = torch.tensor(rng.integers(0, classes, 600))
    ours = metrics.ExpectedCalibrationError()
    for start in range(0, 600, 250):
        ours.update_state(y[start:start + 250], p[start:start + 250])
    theirs = torchmetrics.functional.classification.multiclass_calibration_error(p, y, classes, n_bins=15)
    assert float(ours.result()) == pytest.approx(float(theirs), abs=1e-6)


@pytest.mark.parametrize("num_bins", [1, 7, 15])
def test_weighted_ece_matches_numpy_restatement(rng, num_bins):
    p = softmax(rng.standard_normal((300, 4)) * 2).astype("float32")
    y, w = rng.integers(0, 4, 300), rng.uniform(0, 3, 300)
    expected = numpy_ece(y, p, num_bins, w)
    ece = calibration.expected_calibration_error(y, p, num_bins, sample_weight=w)
    assert ece == pytest.approx(expected, abs=1e-6)


def test_one_sigmoid_probability_reads_as_two_classes(rng):
    p1 = rng.uniform(0, 1, (200, 1)).astype("float32")
    y = rng.integers(0, 2, 200)
    two = np.concatenate([1 - p1, p1], axis=1)
    assert calibration.expected_calibration_error(y, p1) == pytest.approx(numpy_ece(y, two), abs=1e-6)
    nll = -np.mean(np.log(np.where(y == 1, p1[:, 0], 1 - p1[:, 0]).astype(np.float64)))
    assert calibration.negative_log_likelihood(y, p1[:, 0]) == pytest.approx(nll, rel=1e-6)


def test_ece_in_compile_matches_the_function_on_predict(rng):
    x = rng.standard_normal((96, 6)).astype("float32")
    y = rng.integers(0, 3, 96)
    model = lamina.Sequential([layers.Input((6,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", metrics.ExpectedCalibrationError(num_bins=10), "ece"])
    logs = model.evaluate(x, y, batch_size=32, return_dict=True, verbose=0)
    p = model.predict(x, verbose=0)
    assert logs["expected_calibration_error"] == pytest.approx(numpy_ece(y, p, 10), abs=1e-6)
    assert logs["ece"] == pytest.approx(numpy_ece(y, p, 15), abs=1e-6)
    config = metrics.ExpectedCalibrationError(num_bins=10).get_config()
    assert config["num_bins"] == 10
    assert metrics.deserialize(metrics.serialize(metrics.ExpectedCalibrationError(7))).num_bins == 7


def test_negative_log_likelihood_by_hand():
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    y = np.array([0, 1, 1])
    expected = -(np.log(0.5) + np.log(0.1) + np.log(0.8)) / 3
    assert calibration.negative_log_likelihood(y, p) == pytest.approx(expected, rel=1e-12)
    w = np.array([2.0, 1.0, 1.0])
    weighted = -(2 * np.log(0.5) + np.log(0.1) + np.log(0.8)) / 4
    assert calibration.negative_log_likelihood(np.eye(2)[y], p, sample_weight=w) == pytest.approx(weighted)
    # an underflowed probability costs -log(float32 tiny) instead of infinity
    nll = calibration.negative_log_likelihood([1], [[1.0, 0.0]])
    assert nll == pytest.approx(-np.log(np.finfo("float32").tiny))


@pytest.mark.parametrize("call,message", [
    (lambda: metrics.ExpectedCalibrationError(num_bins=0), "num_bins"),
    (lambda: calibration.expected_calibration_error([0, 1], [[2.0, -1.0], [0.5, 0.5]]), "softmax"),
    (lambda: calibration.negative_log_likelihood([0, 3], [[0.5, 0.5], [0.5, 0.5]]), "labels must be in"),
    (lambda: calibration.negative_log_likelihood([0], np.full((1, 2, 2), 0.5)), "shape"),
    (lambda: calibration.fit_temperature([0, 1, 0], [[0.5, 0.5], [0.5, 0.5]]), "3 labels for 2"),
    (lambda: calibration.scale([[0.5, 0.5]], 0.0), "temperature"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def grid_nll(y, p, temperatures):
    log_p = np.log(np.asarray(p, dtype=np.float64))
    out = []
    for t in temperatures:
        s = log_p / t
        s = s - s.max(1, keepdims=True)
        out.append(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))
    return np.array(out)


def test_temperature_of_overconfident_and_calibrated_data_and_grid_oracle(rng):
    z = rng.standard_normal((20000, 5)) * 1.5
    y = sample_labels(rng, softmax(z))  # the labels follow softmax(z): the right temperature of z is 1
    overconfident = softmax(3 * z).astype("float32")
    t = calibration.fit_temperature(y, overconfident)
    assert t == pytest.approx(3.0, rel=0.05)
    assert calibration.fit_temperature(y, softmax(z).astype("float32")) == pytest.approx(1.0, abs=0.05)
    scaled = calibration.scale(overconfident, t)
    nll = calibration.negative_log_likelihood
    assert nll(y, scaled) < nll(y, overconfident) - 0.1
    assert calibration.expected_calibration_error(y, scaled) < 0.02
    # a brute-force search over 801 temperatures from 1 to 5 finds no lower NLL, at the same temperature
    grid = np.logspace(0, 0.7, 801)
    on_grid = grid_nll(y[:3000], overconfident[:3000], grid)
    t_small = calibration.fit_temperature(y[:3000], overconfident[:3000])
    assert grid_nll(y[:3000], overconfident[:3000], [t_small])[0] <= on_grid.min() + 1e-9
    assert abs(np.log(t_small) - np.log(grid[on_grid.argmin()])) <= np.log(grid[1] / grid[0])


def test_temperature_stays_in_range_when_everything_is_right():
    t = calibration.fit_temperature(np.zeros(8, dtype=int), np.tile([[0.9, 0.1]], (8, 1)))
    low, high = calibration.TEMPERATURE_RANGE
    assert low <= t < 0.2  # sharper is always better here; the NLL is ~0 well before the end
    assert grid_nll(np.zeros(8, dtype=int), np.tile([[0.9, 0.1]], (8, 1)), [t])[0] < 1e-9


def test_scale_is_softmax_of_log_probabilities_over_t(rng):
    z = rng.standard_normal((50, 4))
    p = softmax(z).astype("float32")
    np.testing.assert_allclose(calibration.scale(p, 1.0), p, atol=1e-6)
    np.testing.assert_allclose(calibration.scale(p, 2.5), softmax(z / 2.5), atol=1e-5)
    q = 1 / (1 + np.exp(-z[:, :1]))  # one sigmoid unit: sigmoid(logit / T)
    np.testing.assert_allclose(calibration.scale(q, 2.0), 1 / (1 + np.exp(-z[:, :1] / 2)), atol=1e-5)


def test_temperature_scaling_wraps_a_model(rng):
    z = (rng.standard_normal((4000, 3)) * 1.5).astype("float32")
    y = sample_labels(rng, softmax(z.astype(np.float64)))
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(3, activation="softmax", use_bias=False)])
    model.set_weights([3 * np.eye(3, dtype="float32")])  # predicts softmax(3 z): T = 3 undoes it
    scaled = calibration.TemperatureScaling(model).fit(z, y)
    assert scaled.temperature == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(scaled.predict(z), softmax(3 * z.astype(np.float64) / scaled.temperature),
                               atol=1e-5)


def test_reliability_diagram_bars_and_titles(rng):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    p = softmax(rng.standard_normal((200, 3)) * 3).astype("float32")
    y = rng.integers(0, 3, 200)
    figure = lamina.plots.reliability({"softmax": (y, p), "scaled": (y, calibration.scale(p, 2.0))},
                                      num_bins=10, title="t")
    assert len(figure.axes) == 4
    top = figure.axes[0]
    assert top.get_title() == f"softmax\nECE {numpy_ece(y, p, 10):.3f}"
    conf, right = p.max(1).astype(np.float64), p.argmax(1) == y
    bins = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
    expected = [right[bins == b].mean() for b in range(10) if (bins == b).any()]
    heights = [bar.get_height() for bar in top.containers[0]]
    np.testing.assert_allclose(heights, expected, atol=1e-12)
    with pytest.raises(ValueError, match="non-empty dict"):
        lamina.plots.reliability({})
