"""The activation gallery and the training curves: the PNG is written, every panel is labelled, and
the plotted derivatives are the true ones."""

import matplotlib
import numpy as np
import pytest

import lamina
from lamina import cli, layers
from lamina.plots import gallery

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def figure():
    return lamina.plots.activations()


def _panel(figure, title):
    (ax,) = [ax for ax in figure.axes if ax.get_title() == title]
    function, derivative = (line for line in ax.get_lines() if line.get_label() in ("f(x)", "f′(x)"))
    return function.get_xydata(), derivative.get_xydata()


def test_cli_writes_the_gallery_png(tmp_path):
    out = tmp_path / "activations.png"
    assert cli.main(["plot", "activations", "-o", str(out), "--dpi", "40"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_every_panel_is_labelled_and_shows_a_function_and_its_derivative(figure):
    assert len(figure.axes) == len(gallery.DEFAULT_NAMES)
    for ax in figure.axes:
        assert ax.get_title()
        labels = [line.get_label() for line in ax.get_lines()]
        assert "f(x)" in labels and "f′(x)" in labels, ax.get_title()
        assert ax.get_legend() is not None


def test_relu_derivative_is_a_step(figure):
    (x, _), (_, dy) = (a.T for a in _panel(figure, "relu"))
    assert set(dy[x < 0]) == {0.0} and set(dy[x > 0]) == {1.0}


def test_sigmoid_derivative_peaks_at_a_quarter_at_zero(figure):
    _, (x, dy) = (a.T for a in _panel(figure, "sigmoid"))
    assert dy.max() == pytest.approx(0.25) and x[dy.argmax()] == pytest.approx(0.0)


def test_prelu_panel_uses_its_learned_slope(figure):
    (x, y), (_, dy) = (a.T for a in _panel(figure, "PReLU (learned α=0.25)"))
    np.testing.assert_allclose(y[x < 0], 0.25 * x[x < 0], rtol=1e-6)
    assert set(dy[x < 0]) == {0.25}


@pytest.mark.parametrize("name", gallery.DEFAULT_NAMES)
def test_plotted_derivative_agrees_with_finite_differences(figure, name):
    """Away from kinks, the autograd derivative matches the slope of the plotted function."""
    title = gallery._curve(name)[0]
    (x, y), (_, dy) = (a.T for a in _panel(figure, title))
    slope = np.gradient(y, x)
    agree = np.abs(slope - dy) <= 1e-2 * np.maximum(1.0, np.abs(dy))
    assert agree.mean() > 0.99, f"{title}: {np.flatnonzero(~agree)[:5]}"


def test_a_chosen_subset_and_unknown_names():
    fig = lamina.plots.activations(["relu", "gelu"])
    assert [ax.get_title() for ax in fig.axes] == ["relu", "gelu"]
    with pytest.raises(ValueError, match=r"Unknown activation: 'rleu'. Did you mean 'relu'"):
        lamina.plots.activations(["rleu"])


def test_history_curves_show_training_and_validation(rng):
    x = rng.standard_normal((40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, validation_split=0.25, epochs=3, verbose=0)
    fig = lamina.plots.history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax in fig.axes:
        lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
        assert set(lines) == {"training", "validation"} and ax.get_xlabel() == "epoch"
        key = ax.get_title()
        np.testing.assert_allclose(lines["training"], np.c_[[1, 2, 3], history.history[key]])
        np.testing.assert_allclose(lines["validation"][:, 1], history.history[f"val_{key}"])


def test_history_takes_the_dict_and_refuses_nothing_recorded():
    fig = lamina.plots.history({"loss": [1.0, 0.5], "mae": [0.9, 0.4]})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
    with pytest.raises(ValueError, match=r"nothing was recorded"):
        lamina.plots.history({})
    with pytest.raises(TypeError, match=r"History returned by fit\(\)"):
        lamina.plots.history([0.5, 0.4])
