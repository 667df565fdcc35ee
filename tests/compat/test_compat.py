"""Keras scripts run unchanged on lamina: each script in scripts/ runs under Keras (torch backend)
and, with only its import lines rewritten, under lamina; their results must agree.

Tolerances (see Spec): 1e-5 where both runs start from the same weights and do no training;
TRAINED (1e-4) where they then train deterministically (no shuffling, no dropout), because float32
sums taken in a different order drift apart a little with each step; bands where the run draws
random numbers (dropout, shuffling, noise), which the two frameworks draw differently.
"""

import importlib.util
import shutil
from pathlib import Path

import pytest
from harness import SCRIPTS, Spec, differences, finish, port_to_lamina, start

TRAINED = 1e-4


def _importable(*modules):
    return tuple(m for m in modules if importlib.util.find_spec(m) is None)


SPECS = {
    "01_save_keras_formats": Spec(atol=TRAINED),
    "04_random_seed_generator": Spec(bands={
        # 20000 draws: each band is at least 3.5 standard errors wide on either side.
        "normal_mean": (0.95, 1.05), "normal_std": (1.96, 2.04), "uniform_mean": (0.97, 1.03),
        "dropout_zero_fraction": (0.235, 0.265), "jitter_std": (0.485, 0.515)}),
    "05_variables_and_custom_metric": Spec(atol=TRAINED),
    "06_custom_train_step": Spec(atol=TRAINED),
    # Noise, shuffling: a discriminator that starts undecided (BCE ln 2 = 0.69) and slowly wins.
    # Three Keras runs: d_loss 0.668 -> 0.387, g_loss 0.681 -> 1.258, within 0.003 of each other.
    "07_gan_train_step": Spec(bands={"d_loss": (0.3, 0.75), "g_loss": (0.6, 1.5)}),
    "08_endpoint_add_loss": Spec(atol=TRAINED),
    "09_transformer_encoder": Spec(atol=TRAINED),
    "10_bilstm_padded_sequences": Spec(atol=TRAINED),
    "11_learning_rate_schedules": Spec(atol=TRAINED),
    "12_confusion_metrics_class_weight": Spec(atol=TRAINED),
    "14_initializers_regularizers": Spec(atol=TRAINED, tolerances={"he_std": 2e-3}),
    "17_metrics_and_mape": Spec(atol=TRAINED),
    "18_pydataset": Spec(atol=TRAINED),
    "19_tensorboard": Spec(atol=TRAINED, requires=("tensorflow",)),  # Keras writes through tf.summary
    "23_conv1d_timeseries": Spec(atol=TRAINED),
    # Dropout(0.5) and shuffled batches: from a 10-class chance loss (ln 10 = 2.30) downwards.
    # Three Keras runs: loss 2.31 -> 2.19..2.22, accuracy 0.23..0.24, test accuracy 0.35..0.39.
    "24_convnet_digits": Spec(bands={"loss": (1.9, 2.4), "final_accuracy": (0.1, 0.6),
                                     "test_accuracy": (0.15, 0.7)}),
    "25_conv3d_volumes": Spec(atol=TRAINED),
    "26_lstm_forecasting": Spec(atol=TRAINED),
    # Dropout and shuffling; class weights of 1/count make the loss about 1/400 of a plain BCE.
    # Three Keras runs: loss 0.0033 -> 0.0011..0.0014, recall 0.97..1.0.
    "27_imbalanced_classification": Spec(bands={"loss": (5e-4, 5e-3), "final_recall": (0.7, 1.0)}),
    "28_plot_model": Spec(requires=("pydot",)),
    "29_seq2seq_lstm": Spec(atol=TRAINED),
    # Keras' transfer-learning guide says a base called with training=False keeps its
    # BatchNormalization in inference mode after unfreezing; Keras 3's code lets fit's
    # training=True override it and moves the statistics. lamina does what the guide says.
    "30_transfer_learning": Spec(atol=TRAINED, lamina_differs={
        "moving_stats_unchanged": (True, "training=False stays pinned, as Keras' guide says"),
        "tuned_loss": (None, "follows from the pinned BatchNormalization"),
        "predict": (None, "follows from the pinned BatchNormalization")}),
    "31_custom_training_loop": Spec(atol=TRAINED),
}

# Files a script saves that the other framework must open and predict identically with:
# (open_saved.py arguments, the script's result key holding the saving model's predictions on
# probe.npy).
CROSS_LOADS = {
    "01_save_keras_formats": [(["model.keras"], "trained"),
                              (["model.keras", "model.weights.h5"], "trained"),
                              (["best.keras"], "best_checkpoint")],
}

SCRIPT_NAMES = sorted(p.stem for p in SCRIPTS.glob("[0-9][0-9]_*.py"))


def _missing_requirements(spec):
    missing = _importable(*spec.requires)
    if "pydot" in spec.requires and shutil.which("dot") is None:
        missing += ("graphviz's dot",)
    return missing


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_matches_keras(name, tmp_path):
    spec = SPECS.get(name, Spec())
    missing = _missing_requirements(spec)
    if missing:
        pytest.skip(f"Keras itself needs {', '.join(missing)} for {name}")
    script = SCRIPTS / f"{name}.py"
    started = {fw: start(script, fw, tmp_path / fw) for fw in ("keras", "lamina")}
    runs = {fw: finish(process, tmp_path / fw) for fw, process in started.items()}
    assert runs["keras"].returncode == 0, runs["keras"].failure("keras", name)
    assert runs["lamina"].returncode == 0, runs["lamina"].failure("lamina", name)
    problems = differences(runs["keras"].results, runs["lamina"].results, spec)
    assert not problems, f"{name}: lamina's results differ from Keras':\n" + "\n".join(problems)

    for files, key in CROSS_LOADS.get(name, []):
        for saver, opener in (("keras", "lamina"), ("lamina", "keras")):
            folder = runs[saver].workdir
            opened = finish(start(Path(__file__).parent / "open_saved.py", opener, folder, files), folder)
            assert opened.returncode == 0, opened.failure(f"{opener} opening {saver}'s {files}", name)
            problems = differences(runs[saver].results[key], opened.results["predict"], Spec(atol=1e-5))
            assert not problems, f"{opener} predicts differently from {saver} with {files}:\n" + "\n".join(
                problems)


def test_port_rewrites_only_the_imports():
    source = ("import os\nimport keras\nfrom keras import layers, ops\n"
              "from keras.optimizers import schedules\n"
              "x = keras.layers.Dense(2)  # keras stays the module's name\n")
    ported = port_to_lamina(source)
    assert ported.splitlines() == ["import os", "import lamina as keras", "from lamina import layers, ops",
                                   "from lamina.optimizers import schedules",
                                   "x = keras.layers.Dense(2)  # keras stays the module's name"]


def test_port_refuses_a_script_that_mentions_lamina():
    with pytest.raises(AssertionError, match="must not mention lamina"):
        port_to_lamina("import keras\nimport lamina\n")


def test_port_refuses_an_import_it_cannot_rewrite():
    with pytest.raises(AssertionError, match="cannot rewrite"):
        port_to_lamina("import keras  # a comment the rewrite does not expect\n")


def test_every_script_has_a_docstring_and_only_keras_imports():
    for name in SCRIPT_NAMES:
        source = (SCRIPTS / f"{name}.py").read_text()
        assert source.startswith('"""'), name
        port_to_lamina(source)
