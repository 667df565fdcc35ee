"""The benchmark harness (bench/): the frameworks do the same work, and the harness runs end to end.

The end-to-end test runs bench/run.py in a tiny configuration (a few steps, one run) with every
framework that is installed here (Keras 3 on JAX only where jax is), so the harness cannot rot
unnoticed; the torch.compile row uses the aot_eager backend there, which exercises the same
compiled-step code without waiting for C++ code generation.
"""

import json
import os
import re
import time

import numpy as np
import pytest
from bench.frameworks import FRAMEWORKS, Framework, keras3, lamina_fit, torch_loop

from bench import report, run, workloads

INSTALLED = [fw_id for fw_id, fw in FRAMEWORKS.items() if not fw.missing()]


@pytest.mark.parametrize("model", sorted(workloads.WORKLOADS))
def test_frameworks_start_from_the_same_model(model):
    """Same weights and data give the same loss in lamina, the torch peer and Keras (the oracle)."""
    workload = workloads.get(model)
    weights = workloads.initial_weights(workload)
    x, y = workloads.dataset(workload, 48)
    keras_loss = keras3.make_runner("keras_torch", workload, weights, {}).initial_loss(x, y)
    torch_loss = torch_loop.make_runner("torch", workload, weights, {}).initial_loss(x, y)
    lamina_loss = lamina_fit.make_runner("lamina", workload, weights, {}).initial_loss(x, y)
    assert torch_loss == pytest.approx(keras_loss, abs=1e-5)
    assert lamina_loss == pytest.approx(keras_loss, abs=1e-5)
    # Untrained softmax over 10 classes: the loss is near ln(10), not a degenerate constant.
    assert 1.5 < keras_loss < 3.5


def test_initial_weights_are_keras_shaped_and_seeded():
    import keras

    workload = workloads.get("fcn")
    weights = workloads.initial_weights(workload)
    model = workloads.keras_style_model(keras, workload)
    assert [w.shape for w in weights] == [tuple(v.shape) for v in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(weights, workloads.initial_weights(workload)))
    x_small, y_small = workloads.dataset(workload, 8)
    x_large, y_large = workloads.dataset(workload, 32)
    np.testing.assert_array_equal(x_small, x_large[:8])
    np.testing.assert_array_equal(y_small, y_large[:8])


def test_bench_runs_end_to_end(tmp_path):
    out = run.main(["--models", "mlp", "--n", "64", "--epochs", "2", "--repeats", "1",
                    "--predict-calls", "3", "--scaling-frameworks", "lamina", "--batch-sizes", "1,4",
                    "--scaling-n", "8", "--dataset-sizes", "32,64", "--scaling-epochs", "2",
                    "--compile-backend", "aot_eager", "--out", str(tmp_path)])
    summary = out["summary"]
    rows = {r["framework"]: r for r in summary["training"]}
    assert list(rows) == INSTALLED
    for row in rows.values():
        assert row["errors"] == [] and row["samples_per_s"] > 0 and row["peak_rss_mb"] > 50
        assert row["load_average"] >= 0
    peers = [r for r in rows.values() if r["peer"]]
    assert max(r["vs_best_peer"] for r in peers) == 1.0
    assert summary["initial_loss"]["mlp"]["agree"]
    paths = {(r["framework"], r["path"]) for r in summary["predict"]}
    assert {("lamina", "predict()"), ("lamina", "model(x)"), ("torch", "model(x)")} <= paths
    (curve,) = summary["scaling"]
    assert [p["batch_size"] for p in curve["batch_size"]] == [1, 4]
    assert [p["n"] for p in curve["dataset_size"]] == [32, 64]

    json_file, md_file, png_file = out["files"]
    saved = json.loads(open(json_file).read())
    assert saved["summary"]["training"][0]["framework"] == INSTALLED[0]
    # lamina's runs say what its thread probe chose
    (lamina_run,) = [r for r in saved["compare"] if r["framework"] == "lamina"]
    assert re.fullmatch(r"1 thread|\d+ threads, (throttled|spinning) waits", lamina_run["jobs"][0]["setting"])
    text = open(md_file).read()
    assert "vs best peer" in text and "mlp: initial losses agree" in text
    with open(png_file, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.partial.json"))  # removed once the run is complete

    # An interrupted run leaves its results so far; --report renders them without measuring.
    del saved["summary"], saved["meta"]["load_after"]
    saved["compare"], saved["scaling"] = saved["compare"][:1], []
    partial = tmp_path / "bench-interrupted.partial.json"
    partial.write_text(json.dumps(saved))
    rendered = run.main(["--report", str(partial)])
    assert rendered["files"] == [str(tmp_path / f"bench-interrupted.{ext}") for ext in ("json", "md")]
    text = (tmp_path / "bench-interrupted.md").read_text()
    assert "not run" in text and "the run was interrupted" in text


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="pins with sched_setaffinity")
def test_busy_mode_spins_on_one_of_the_workers_cores_and_stops():
    with run.competing_process(False) as none:
        assert none is None
    with run.competing_process(True) as spinner:
        deadline = time.monotonic() + 60
        while os.sched_getaffinity(spinner.pid) != {min(os.sched_getaffinity(0))}:
            assert spinner.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    assert spinner.poll() is not None


def test_missing_framework_is_skipped(capsys):
    from rich.console import Console

    registry = {"ghost": Framework("ghost", "ghost", "torch_loop", ("no_such_package_xyz",)), **FRAMEWORKS}
    kept = run._available(["ghost", "torch"], registry, Console(stderr=True))
    assert kept == ["torch"]
    assert "skipping ghost: no_such_package_xyz not installed" in capsys.readouterr().err


def test_a_failing_worker_is_reported_not_raised():
    broken = Framework("broken", "broken", "no_such_module", ())
    result = run.run_worker(broken, {"model": "mlp", "jobs": [], "predict_calls": 0}, threads=1, timeout=120)
    assert "exit code 1" in result["error"] and "no_such_module" in result["error"]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "1"], "at least 2"),
    (["--models", "vgg"], "unknown model 'vgg'"),
    (["--frameworks", "tensorflow"], "unknown framework 'tensorflow'"),
    (["--batch-sizes", "1,256", "--scaling-n", "128"], "at least the largest batch size"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        run.parse_args(argv)
    assert message in capsys.readouterr().err


def _run(framework, model, seconds_per_epoch, loss=2.3, predict=None, n=100, mean=None):
    result = {"framework": framework, "model": model, "peak_rss_mb": 300.0, "initial_loss": loss,
              "jobs": [{"kind": "compare", "batch_size": 10, "n": n, "epochs": 3,
                        "epoch_seconds": [9.0, seconds_per_epoch, seconds_per_epoch]}]}
    if predict is not None:
        result["predict_ms"] = {"model(x)": {"p50": predict, "p90": predict, "calls": 5,
                                             "mean": predict if mean is None else mean}}
    return result


def test_summary_medians_and_ratios_to_the_best_peer():
    raw = {
        "settings": {"models": ["mlp"], "frameworks": ["lamina", "torch", "keras_jax"]},
        "frameworks": {k: {"label": FRAMEWORKS[k].label, "peer": FRAMEWORKS[k].peer}
                       for k in ("lamina", "torch", "keras_jax")},
        "compare": [
            # The first epoch (9 s, compilation) is left out; runs are combined by their median.
            _run("lamina", "mlp", 0.5, predict=2.0), _run("lamina", "mlp", 0.25, predict=1.0),
            _run("lamina", "mlp", 0.2, predict=4.0),
            # torch's calls: the fastest median, and a mean raised by a few long calls (busy cores)
            _run("torch", "mlp", 1.0, predict=0.5, mean=3.0),
            _run("keras_jax", "mlp", 0.4, loss=2.31, predict=8.0),
            {"framework": "keras_jax", "model": "mlp", "round": 2, "error": "exit code 1: boom"},
        ],
        "scaling": [{"framework": "lamina", "model": "mlp", "jobs": [
            {"kind": "dataset_size", "batch_size": 10, "n": n, "epochs": 2,
             "epoch_seconds": [5.0, 1e-3 * n + 0.1]} for n in (100, 200, 400)]}],
    }
    summary = report.summarize(raw)
    rows = {r["framework"]: r for r in summary["training"]}
    assert rows["lamina"]["samples_per_s"] == pytest.approx(400)  # median of 200, 400, 500
    assert (rows["lamina"]["min"], rows["lamina"]["max"]) == pytest.approx((200, 500))
    assert rows["keras_jax"]["vs_best_peer"] == 1.0  # 250 samples/s beats torch's 100
    assert rows["lamina"]["vs_best_peer"] == pytest.approx(400 / 250)
    assert rows["torch"]["vs_best_peer"] == pytest.approx(100 / 250)
    assert rows["keras_jax"]["errors"] == ["exit code 1: boom"]
    latency = {r["framework"]: r for r in summary["predict"]}
    assert latency["lamina"]["p50_ms"] == 2.0
    assert latency["lamina"]["vs_best_peer"] == pytest.approx(0.5 / 2.0)  # torch's 0.5 ms is the best peer
    assert latency["lamina"]["mean_ms"] == 2.0
    assert latency["lamina"]["mean_vs_best_peer"] == pytest.approx(3.0 / 2.0)  # torch's mean 3 ms is best
    assert report.predict_table(summary)[1][0][-2:] == ["2.000", "1.50x"]
    check = summary["initial_loss"]["mlp"]
    assert not check["agree"] and check["spread"] == pytest.approx(0.01)
    assert "DISAGREE" in report.loss_notes(summary)[0]
    fit = summary["scaling"][0]["linear_fit"]
    assert fit["us_per_sample"] == pytest.approx(1000) and fit["intercept_s"] == pytest.approx(0.1)
    assert fit["r2"] == pytest.approx(1.0)
