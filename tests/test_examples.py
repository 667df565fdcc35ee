"""The examples run as a user runs them (fewer epochs)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_forecast_airline_runs_and_draws(tmp_path):
    out = tmp_path / "forecast.png"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "forecast_airline.py"), "--epochs", "3",
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "test MAE over the last 24 months" in done.stdout
    assert out.stat().st_size > 10_000


def test_gan_trains_its_own_step_and_draws_a_grid_per_class(tmp_path):
    out = tmp_path / "gan.png"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "gan.py"), "--epochs", "1",
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "d_loss" in done.stdout and "samples per class written to" in done.stdout
    assert out.stat().st_size > 10_000


def test_transformer_norms_runs_and_draws(tmp_path):
    out = tmp_path / "norms.png"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "transformer_norms.py"),
                           "--batch-sizes", "32", "--epochs", "1", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LayerNormalization" in done.stdout and "BatchNormalization" in done.stdout
    assert out.stat().st_size > 10_000
