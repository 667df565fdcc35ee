"""`lamina tsc --uncertainty / --temperature-scaling`: the printed and written numbers against a
numpy recomputation from the saved model, the n/a rows, the held-out split, and an ensemble's rows."""

import argparse
import io
import json

import numpy as np
import pytest
from rich.console import Console

import lamina
from lamina import layers
from lamina.cli import main
from lamina.datasets import load_ucr
from lamina.tsc import uncertainty
from tests.test_calibration import numpy_ece


def numpy_nll(y, p):
    return float(-np.mean(np.log(np.asarray(p, dtype=np.float64)[np.arange(len(y)), y])))


def test_cli_reports_softmax_mc_dropout_and_temperature(tmp_path, capsys):
    assert main(["tsc", "ItalyPowerDemand", "--model", "mlp", "--epochs", "2", "--temperature-scaling",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "held out to fit the temperature" in out and "MC dropout (30 passes)" in out
    assert "ensemble: n/a (mlp is a single network)" in out
    assert (tmp_path / "ItalyPowerDemand_mlp_reliability.png").stat().st_size > 0
    report = json.loads((tmp_path / "ItalyPowerDemand_mlp_uncertainty.json").read_text())
    methods = report["methods"]
    assert report["held_out_for_temperature"] == 14  # round(0.2 * 34) + round(0.2 * 33) of the classes
    assert [m.split(" (")[0] for m in methods] == ["softmax", "MC dropout", "temperature-scaled"]
    data = load_ucr("ItalyPowerDemand")
    p = lamina.load_model(str(tmp_path / "ItalyPowerDemand_mlp.lamina")).predict(data.x_test, verbose=0)
    softmax = methods["softmax"]
    assert softmax["accuracy"] == pytest.approx(np.mean(p.argmax(1) == data.y_test))
    assert softmax["nll"] == pytest.approx(numpy_nll(data.y_test, p), rel=1e-5)
    assert softmax["ece"] == pytest.approx(numpy_ece(data.y_test, p), abs=1e-6)
    for method, numbers in methods.items():
        assert f"{numbers['nll']:.4f}" in out and f"{numbers['ece']:.4f}" in out, method


def test_cli_says_mc_dropout_is_na_without_dropout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tsc", "ItalyPowerDemand", "--model", "fcn", "--epochs", "1", "--uncertainty"]) == 0
    out = capsys.readouterr().out
    assert "MC dropout: n/a (fcn has no dropout layer)" in out and "temperature-scaled" not in out
    assert (tmp_path / "ItalyPowerDemand_fcn_reliability.png").exists()
    with pytest.raises(ValueError, match="--ablate-norm"):
        main(["tsc", "ItalyPowerDemand", "--uncertainty", "--ablate-norm"])


def test_hold_out_is_stratified_and_disjoint():
    data = load_ucr("ItalyPowerDemand")
    train, (x_held, y_held) = uncertainty.hold_out(data, 0.2, seed=3)
    for label in np.unique(data.y_train):
        n = int((data.y_train == label).sum())
        assert int((y_held == label).sum()) == round(0.2 * n)
        assert int((train.y_train == label).sum()) == n - round(0.2 * n)
    rows = {row.tobytes() for row in data.x_train}
    held, kept = {row.tobytes() for row in x_held}, {row.tobytes() for row in train.x_train}
    assert held | kept == rows and not held & kept
    assert len(train.lengths_train) == len(train.y_train)


class _Averaged(lamina.Model):
    """The ensemble contract the CLI relies on: `members`, and predict = their mean probability."""

    def __init__(self, members):
        super().__init__(name="averaged")
        self.members = members
        for i, member in enumerate(members):
            self.add_module(f"member{i}", member)

    def call(self, x):
        return sum(m(x) for m in self.members) / len(self.members)


def test_ensemble_rows_use_the_members(rng, tmp_path):
    members = []
    for _ in range(2):
        member = lamina.Sequential([layers.Input((5, 1)), layers.Flatten(), layers.Dropout(0.3),
                                    layers.Dense(3, activation="softmax")])
        member.set_weights([rng.standard_normal((5, 3)).astype("float32"), np.zeros(3, "float32")])
        members.append(member)
    model = _Averaged(members)
    data = argparse.Namespace(x_test=rng.standard_normal((40, 5, 1)).astype("float32"),
                              y_test=rng.integers(0, 3, 40))
    methods = uncertainty._probabilities(model, data, held_out=None, seed=0)
    first, second = (m.predict(data.x_test, verbose=0) for m in members)
    np.testing.assert_allclose(methods["softmax (member 1)"], first, atol=1e-6)
    np.testing.assert_allclose(methods["ensemble (2 members)"], (first + second) / 2, atol=1e-6)
    mc = methods["MC dropout (30 passes)"]
    assert mc.shape == first.shape and not np.allclose(mc, (first + second) / 2, atol=1e-3)
    args = argparse.Namespace(uncertainty=True, temperature_scaling=False, dataset="toy", model="averaged",
                              out=str(tmp_path), seed=0, runs=1)
    numbers = uncertainty.report(args, model, data, None, Console(file=io.StringIO()))
    ensemble = numbers["ensemble (2 members)"]
    assert ensemble["nll"] == pytest.approx(numpy_nll(data.y_test, (first + second) / 2), rel=1e-5)
    assert (tmp_path / "toy_averaged_reliability.png").exists()
    assert uncertainty.report(argparse.Namespace(**{**vars(args), "uncertainty": False}), model, data,
                              None, Console()) is None
