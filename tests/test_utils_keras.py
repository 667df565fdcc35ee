"""keras.utils' surface: pad_sequences, normalize, PyDataset in fit/evaluate/predict, plot_model,
and Keras 3's input-rank rule for data one axis off the model's Input, each against Keras."""

import shutil

import numpy as np
import pytest
import torch

import lamina
from lamina import utils
from tests.parity import keras

SEQUENCES = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9]]


@pytest.mark.parametrize("kwargs", [
    {}, {"maxlen": 3}, {"maxlen": 3, "padding": "post", "truncating": "post"},
    {"maxlen": 6, "value": -1.5, "dtype": "float32"}, {"maxlen": 2, "truncating": "post"},
    {"padding": "post", "dtype": "int64"},
], ids=str)
def test_pad_sequences_matches_keras(kwargs):
    ours, theirs = utils.pad_sequences(SEQUENCES, **kwargs), keras.utils.pad_sequences(SEQUENCES, **kwargs)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_items_with_shape_and_text():
    vectors = [np.ones((2, 3)), np.zeros((4, 3)) + 2]
    np.testing.assert_array_equal(utils.pad_sequences(vectors, maxlen=3, dtype="float32"),
                                  keras.utils.pad_sequences(vectors, maxlen=3, dtype="float32"))
    words = [["a", "b"], ["c"]]
    np.testing.assert_array_equal(utils.pad_sequences(words, dtype=object, value="<pad>"),
                                  keras.utils.pad_sequences(words, dtype=object, value="<pad>"))
    with pytest.raises(ValueError, match="truncating"):
        utils.pad_sequences(SEQUENCES, truncating="middle")
    with pytest.raises(ValueError, match="dtype"):
        utils.pad_sequences(words, value="<pad>")


def test_normalize_matches_keras(rng):
    x = rng.standard_normal((4, 5))
    x[2] = 0.0
    np.testing.assert_allclose(utils.normalize(x), keras.utils.normalize(x), rtol=1e-12)
    np.testing.assert_allclose(utils.normalize(x, order=1), keras.utils.normalize(x, order=1), rtol=1e-12)
    t = torch.tensor(x)
    np.testing.assert_allclose(utils.normalize(t).numpy(), keras.utils.normalize(t).numpy(), rtol=1e-6)


def _py_dataset(lib, x, y, w, batch_size):
    """The Keras guide's PyDataset, written against either library; counts its epoch hooks."""

    class Batches(lib.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.epochs_ended = 0

        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def __getitem__(self, index):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            if y is None:
                return (x[rows],)
            return (x[rows], y[rows]) if w is None else (x[rows], y[rows], w[rows])

        def on_epoch_end(self):
            self.epochs_ended += 1

    # Keras' own results vary with workers > 1 (batches from threads arrive out of order).
    return Batches(workers=1, use_multiprocessing=False, max_queue_size=4)


def test_py_dataset_in_fit_evaluate_predict_matches_keras(rng):
    x = rng.standard_normal((50, 4)).astype("float32")
    y = rng.integers(0, 3, (50,))
    w = rng.uniform(0.5, 2, 50).astype("float32")
    weights = [rng.standard_normal((4, 3)).astype("float32") * 0.5, np.zeros(3, "float32")]
    results = {}
    for lib in (keras, lamina):
        model = lib.Sequential([lib.layers.Input((4,)), lib.layers.Dense(3, activation="softmax")])
        model.set_weights(weights)
        model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        train = _py_dataset(lib, x, y, w, 16)
        history = model.fit(train, epochs=3, verbose=0, shuffle=False,
                            validation_data=_py_dataset(lib, x, y, None, 16))
        evaluated = model.evaluate(_py_dataset(lib, x, y, None, 10), verbose=0, return_dict=True)
        predicted = model.predict(_py_dataset(lib, x, None, None, 7), verbose=0)
        results[lib.__name__] = (history.history, evaluated, predicted, train.epochs_ended)
    (k_hist, k_eval, k_pred, k_ended), (l_hist, l_eval, l_pred, l_ended) = results["keras"], results["lamina"]
    for key in k_hist:
        np.testing.assert_allclose(l_hist[key], k_hist[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert l_eval == pytest.approx(k_eval, rel=1e-4)
    np.testing.assert_allclose(l_pred, k_pred, rtol=1e-5, atol=1e-6)
    assert l_ended == 3 and k_ended in (3, 4)  # Keras 3.15 also calls it once as fit starts
    assert utils.Sequence is utils.PyDataset


def test_py_dataset_batches_are_shuffled_per_epoch_when_fit_shuffles():
    seen = []

    class Indexed(utils.PyDataset):
        def __len__(self):
            return 6

        def __getitem__(self, index):
            seen.append(index)
            return np.full((2, 1), index, "float32"), np.zeros((2, 1), "float32")

    model = lamina.Sequential([lamina.layers.Input((1,)), lamina.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(Indexed(), epochs=4, verbose=0)
    epochs = [seen[-24:][i * 6:(i + 1) * 6] for i in range(4)]
    assert all(sorted(e) == list(range(6)) for e in epochs)
    assert any(e != list(range(6)) for e in epochs)


def test_py_dataset_refuses_a_separate_y():
    model = lamina.Sequential([lamina.layers.Input((4,)), lamina.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = _py_dataset(lamina, np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32"), None, 4)
    with pytest.raises(ValueError, match="PyDataset"):
        model.fit(data, np.zeros((8, 1)), verbose=0)


@pytest.mark.parametrize("input_shape,data_shape", [((5, 1), (6, 5)), ((5,), (6, 5, 1)), ((1,), (6,)),
                                                    ((3, 4, 1), (6, 3, 4))])
@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_data_one_axis_off_the_input_is_adjusted_as_keras(rng, input_shape, data_shape, kind):
    x = rng.standard_normal(data_shape).astype("float32")
    y = rng.standard_normal((data_shape[0], 2)).astype("float32")
    outputs = {}
    for lib in (keras, lamina):
        if kind == "functional":
            inputs = lib.layers.Input(input_shape)
            model = lib.Model(inputs, lib.layers.Dense(2)(lib.layers.Flatten()(inputs)))
        else:
            model = lib.Sequential([lib.layers.Input(input_shape), lib.layers.Flatten(), lib.layers.Dense(2)])
        if lib is keras:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        model.compile("sgd", "mse")
        loss = model.evaluate(x, y, verbose=0)
        outputs[lib.__name__] = (model.predict(x, verbose=0), loss)
    np.testing.assert_allclose(outputs["lamina"][0], outputs["keras"][0], rtol=1e-5, atol=1e-6)
    assert outputs["lamina"][1] == pytest.approx(outputs["keras"][1], rel=1e-5)


def test_data_two_axes_off_is_still_refused():
    model = lamina.Sequential([lamina.layers.Input((5,)), lamina.layers.Dense(2)])
    with pytest.raises(ValueError, match="expects input of shape"):
        model.predict(np.zeros(6, "float32"), verbose=0)


def _two_branch_model():
    inputs = lamina.layers.Input((8,), name="features")
    left = lamina.layers.Dense(4, activation="relu", name="left")(inputs)
    right = lamina.layers.Dense(4, name="right")(inputs)
    merged = lamina.layers.Concatenate(name="join")([left, right])
    return lamina.Model(inputs, lamina.layers.Dense(1, activation="sigmoid", name="score")(merged))


def test_model_to_dot_describes_the_graph():
    source = utils.model_to_dot(_two_branch_model(), show_shapes=True, show_layer_activations=True,
                                show_trainable=True, show_dtype=True, rankdir="LR")
    for text in ("features (InputLayer)", "left (Dense)", "join (Concatenate)", "Activation: relu",
                 "Output shape: (None, 8)", "Input shape: [(None, 4), (None, 4)]", "Trainable: Y",
                 "rankdir=LR", "dtype: float32"):
        assert text in source, text
    assert source.count("->") == 5  # input->left, input->right, left->join, right->join, join->score
    # summary()'s Trainable column: a layer without weights (the Concatenate) is "-"
    join = next(line for line in source.splitlines() if "join (Concatenate)" in line)
    assert join.endswith('Trainable: -"];'), join


def test_model_to_dot_expands_nested_models():
    inner = lamina.Sequential([lamina.layers.Input((3,)), lamina.layers.Dense(2, name="inner_dense")],
                              name="inner")
    outer_in = lamina.layers.Input((3,))
    outer = lamina.Model(outer_in, lamina.layers.Dense(1, name="head")(inner(outer_in)))
    flat, nested = utils.model_to_dot(outer), utils.model_to_dot(outer, expand_nested=True)
    assert "inner (Sequential)" in flat and "inner_dense" not in flat
    assert "cluster_" in nested and "inner_dense (Dense)" in nested


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_plot_model_renders_png_and_svg(tmp_path):
    model = _two_branch_model()
    assert utils.plot_model(model, to_file=tmp_path / "m.png", show_shapes=True, dpi=72) is None
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    utils.plot_model(model, to_file=str(tmp_path / "m.svg"))
    assert "left (Dense)" in (tmp_path / "m.svg").read_text()


def test_plot_model_without_graphviz_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ImportError, match="apt-get install graphviz"):
        utils.plot_model(_two_branch_model(), to_file=tmp_path / "m.png")
    utils.plot_model(_two_branch_model(), to_file=tmp_path / "m.dot")  # the source needs no Graphviz
    assert (tmp_path / "m.dot").read_text().startswith("digraph")


def test_model_to_dot_of_a_sequential_built_from_data():
    model = lamina.Sequential([lamina.layers.Dense(3, name="first"), lamina.layers.Dense(1, name="second")])
    assert "first (Dense)" in utils.model_to_dot(model)  # drawable before it is built
    model.predict(np.zeros((2, 4), "float32"), verbose=0)
    source = utils.model_to_dot(model, show_shapes=True)
    assert "Input shape: (None, 4)\\nOutput shape: (None, 3)" in source
    assert source.count("->") == 2
