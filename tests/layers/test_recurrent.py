import numpy as np
import pytest
import torch

import lamina
from lamina import layers
from tests.parity import assert_parity, keras

RNNS = ["LSTM", "GRU", "SimpleRNN"]
STATE_COUNT = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}
FUSED = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn_tanh"}

# (batch 3, timesteps 6): True where a step is data, False where it is padding.
MASKS = {
    "right_padded": [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
    "holes": [[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 1, 0]],
    "fully_masked_row": [[0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0]],
}


def pair(name, **kwargs):
    """The same recurrent layer in lamina and in Keras."""
    return getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)


def mask_of(kind):
    return torch.tensor(MASKS[kind], dtype=torch.bool)


@pytest.fixture
def x(rng):
    return rng.standard_normal((3, 6, 4)).astype("float32")


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of torch's fused recurrent kernels, keyed by name."""
    calls = {}

    def wrap(name):
        real = getattr(torch, name)

        def counted(*args):
            calls[name] = calls.get(name, 0) + 1
            return real(*args)
        monkeypatch.setattr(torch, name, counted)

    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        wrap(name)
    return calls


# ----------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("name", RNNS)
@pytest.mark.parametrize("options", [
    {},
    {"return_sequences": True, "return_state": True},
    {"go_backwards": True, "return_sequences": True, "return_state": True},
    {"go_backwards": True},
    {"use_bias": False, "return_sequences": True},
    {"activation": "relu", "return_sequences": True},
    {"activation": "softsign", "return_state": True},
])
def test_matches_keras(name, options, x):
    assert_parity(*pair(name, units=5, **options), x)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_recurrent_activation_matches_keras(name, x):
    assert_parity(*pair(name, units=5, recurrent_activation="hard_sigmoid", return_sequences=True), x)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("mask", [None, "holes", "left_padded"])
def test_gru_reset_before_matches_keras(use_bias, mask, x):
    kwargs = {} if mask is None else {"mask": mask_of(mask)}
    assert_parity(*pair("GRU", units=5, reset_after=False, use_bias=use_bias,
                        return_sequences=True, return_state=True), x, **kwargs)


@pytest.mark.parametrize("name", RNNS)
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("options", [
    {"return_sequences": True, "return_state": True},
    {"go_backwards": True, "return_state": True},
    {"go_backwards": True, "return_sequences": True, "activation": "softsign"},  # step loop
    {"return_sequences": True, "zero_output_for_mask": True},
])
def test_masked_matches_keras(name, mask, options, x):
    assert_parity(*pair(name, units=5, **options), x, mask=mask_of(mask))


@pytest.mark.parametrize("name", RNNS)
@pytest.mark.parametrize("options", [
    {"return_state": True},
    {"return_state": True, "return_sequences": True, "go_backwards": True},
    {"return_state": True, "return_sequences": True, "activation": "softsign"},
])
def test_initial_state_matches_keras(name, options, x, rng):
    states = [torch.tensor(rng.standard_normal((3, 5)).astype("float32"))
              for _ in range(STATE_COUNT[name])]
    # A fully masked sample keeps its initial state and outputs zeros.
    assert_parity(*pair(name, units=5, **options), x, initial_state=states,
                  mask=mask_of("fully_masked_row"))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_keras(merge_mode, return_sequences, x):
    assert_parity(
        layers.Bidirectional(layers.LSTM(5, return_sequences=return_sequences), merge_mode=merge_mode),
        keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=return_sequences),
                                   merge_mode=merge_mode),
        x)


@pytest.mark.parametrize("merge_mode", ["concat", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_states_and_mask_match_keras(merge_mode, return_sequences, x):
    options = {"return_sequences": return_sequences, "return_state": True}
    assert_parity(layers.Bidirectional(layers.GRU(5, **options), merge_mode=merge_mode),
                  keras.layers.Bidirectional(keras.layers.GRU(5, **options), merge_mode=merge_mode),
                  x, mask=mask_of("right_padded"))


def test_bidirectional_initial_state_matches_keras(x, rng):
    states = [torch.tensor(rng.standard_normal((3, 5)).astype("float32")) for _ in range(4)]
    assert_parity(layers.Bidirectional(layers.LSTM(5, return_state=True)),
                  keras.layers.Bidirectional(keras.layers.LSTM(5, return_state=True)),
                  x, initial_state=states)


def test_bidirectional_with_own_backward_layer_matches_keras(x):
    assert_parity(
        layers.Bidirectional(layers.LSTM(5, return_sequences=True),
                             backward_layer=layers.SimpleRNN(3, go_backwards=True,
                                                             return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True),
                                   backward_layer=keras.layers.SimpleRNN(3, go_backwards=True,
                                                                         return_sequences=True)),
        x, mask=mask_of("holes"))


# ----------------------------------------------------------------- weights
@pytest.mark.parametrize("name, options", [
    ("LSTM", {}), ("LSTM", {"use_bias": False}), ("GRU", {}), ("GRU", {"reset_after": False}),
    ("SimpleRNN", {}),
])
def test_weights_round_trip_in_keras_shapes(name, options, x):
    ours, theirs = pair(name, units=5, **options)
    theirs(x)
    ours(torch.as_tensor(x))
    keras_weights = [np.asarray(w) for w in theirs.get_weights()]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_weights]
    ours.set_weights(keras_weights)
    for got, want in zip(ours.get_weights(), keras_weights):
        np.testing.assert_array_equal(got, want)


def test_lstm_weights_are_torch_lstm_weights(x):
    """Kept in torch's layout: the parameters drop into torch.nn.LSTM unchanged (zero bias_hh)."""
    ours = layers.LSTM(5, return_sequences=True)
    out = ours(torch.as_tensor(x))
    reference = torch.nn.LSTM(4, 5, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(ours.kernel)
        reference.weight_hh_l0.copy_(ours.recurrent_kernel)
        reference.bias_ih_l0.copy_(ours.bias)
        reference.bias_hh_l0.zero_()
        expected, _ = reference(torch.as_tensor(x))
    torch.testing.assert_close(out, expected)


def test_gru_weights_are_torch_gru_weights(x):
    ours = layers.GRU(5, return_sequences=True, bias_initializer="random_normal")
    out = ours(torch.as_tensor(x))
    reference = torch.nn.GRU(4, 5, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(ours.kernel)
        reference.weight_hh_l0.copy_(ours.recurrent_kernel)
        reference.bias_ih_l0.copy_(ours.bias[0])
        reference.bias_hh_l0.copy_(ours.bias[1])
        expected, _ = reference(torch.as_tensor(x))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_lstm_unit_forget_bias(unit_forget_bias):
    layer = layers.LSTM(3, unit_forget_bias=unit_forget_bias)
    layer(torch.zeros(1, 2, 4))
    bias = layer.get_weights()[2]
    expected = np.zeros(12, "float32")
    if unit_forget_bias:
        expected[3:6] = 1.0  # the forget gate, second of i, f, c, o
    np.testing.assert_array_equal(bias, expected)


def test_regularizers_penalize_each_weight():
    layer = layers.GRU(3, kernel_regularizer=lamina.regularizers.L2(0.1),
                       recurrent_regularizer=lamina.regularizers.L1(0.2),
                       bias_regularizer=lamina.regularizers.L2(0.3), bias_initializer="ones")
    layer(torch.zeros(1, 2, 4))
    kernel, recurrent, bias = layer.get_weights()
    expected = [0.1 * (kernel**2).sum(), 0.2 * np.abs(recurrent).sum(), 0.3 * (bias**2).sum()]
    np.testing.assert_allclose([float(p.detach()) for p in layer.losses], expected, rtol=1e-6)


def test_count_params_and_functional_shapes_match_keras():
    def build(api):
        inp = api.Input((6, 4))
        seq, h, c = api.layers.LSTM(5, return_sequences=True, return_state=True)(inp)
        both = api.layers.Bidirectional(api.layers.GRU(3, return_state=True), merge_mode=None)(seq)
        return api.Model(inp, [seq, h, c, *both])

    ours, theirs = build(lamina), build(keras)
    assert ours.count_params() == theirs.count_params()
    got = ours(torch.zeros(2, 6, 4))
    want = theirs(torch.zeros(2, 6, 4))
    assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]


# ----------------------------------------------------------------- stateful
@pytest.mark.parametrize("name", RNNS)
def test_stateful_carries_states_across_calls_as_keras(name, x, rng):
    second = rng.standard_normal(x.shape).astype("float32")
    ours, theirs = pair(name, units=5, stateful=True, return_sequences=True)
    theirs(torch.as_tensor(x))
    theirs.reset_states()
    ours(torch.as_tensor(x))
    ours.reset_states()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for batch in (x, second):
        np.testing.assert_allclose(ours(torch.as_tensor(batch)).detach().numpy(),
                                   theirs(torch.as_tensor(batch)).detach().numpy(), atol=1e-5)
    fresh = getattr(layers, name)(5, return_sequences=True)
    fresh(torch.as_tensor(x))
    fresh.set_weights(ours.get_weights())
    assert not np.allclose(ours(torch.as_tensor(second)).detach().numpy(),
                           fresh(torch.as_tensor(second)).detach().numpy(), atol=1e-3)
    ours.reset_states()
    theirs.reset_states()
    np.testing.assert_allclose(ours(torch.as_tensor(second)).detach().numpy(),
                               fresh(torch.as_tensor(second)).detach().numpy(), atol=1e-6)


def test_stateful_predict_advances_as_keras_but_not_in_training_mode(x):
    theirs_in = keras.Input(batch_shape=(3, 6, 4))
    theirs = keras.Model(theirs_in, keras.layers.LSTM(5, stateful=True)(theirs_in))
    ours = lamina.Sequential([layers.Input((6, 4), batch_size=3), layers.LSTM(5, stateful=True)])
    ours.set_weights(theirs.get_weights())
    lstm = ours.layers[-1]
    for _ in range(2):  # predict() carries the states on, as Keras does
        np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                                   atol=1e-5)
    carried = [s.clone() for s in lstm.states]
    first = ours.predict(x, training=True)
    np.testing.assert_allclose(ours.predict(x, training=True), first)
    for before, after in zip(carried, lstm.states):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    # The states predict() carried are ordinary tensors: training can go on from them.
    ours.compile(optimizer="sgd", loss="mse")
    ours.fit(x, np.zeros((3, 5), "float32"), batch_size=3, epochs=1, verbose=0)


def test_stateful_rejects_another_batch_size():
    layer = layers.GRU(2, stateful=True, name="memory")
    layer(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match=r"'memory' is stateful.*batch of 4.*batch of 3"):
        layer(torch.zeros(3, 3, 2))


def test_bidirectional_stateful_states_and_reset():
    bi = layers.Bidirectional(layers.LSTM(2, stateful=True))
    bi(torch.ones(3, 4, 2))
    assert len(bi.states) == 4 and all(s.abs().sum() > 0 for s in bi.states)
    bi.reset_states()
    assert all(s.abs().sum() == 0 for s in bi.states)
    with pytest.raises(AttributeError, match="stateful"):
        layers.Bidirectional(layers.LSTM(2)).reset_states()


# ----------------------------------------------------------------- dropout
def test_dropout_only_in_training(x):
    layer = layers.LSTM(5, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    plain = layers.LSTM(5, return_sequences=True)
    inputs = torch.as_tensor(x)
    plain(inputs)
    layer(inputs)
    plain.set_weights(layer.get_weights())
    assert layer.is_dropout and not plain.is_dropout
    torch.testing.assert_close(layer(inputs), plain(inputs))
    torch.testing.assert_close(layer(inputs, training=False), plain(inputs))
    first, second = layer(inputs, training=True), layer(inputs, training=True)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, plain(inputs))


def _identity_rnn(units, **options):
    """A linear SimpleRNN whose output is its input (recurrent kernel zero) or its state."""
    layer = layers.SimpleRNN(units, activation="linear", use_bias=False, return_sequences=True,
                             **options)
    layer(torch.zeros(1, 1, units))
    eye = np.eye(units, dtype="float32")
    return layer, eye


def test_input_dropout_keeps_one_mask_per_sequence():
    layer, eye = _identity_rnn(8, dropout=0.5)
    layer.set_weights([eye, np.zeros_like(eye)])
    x = torch.rand(400, 5, 8) + 0.5
    ratio = layer(x, training=True).detach() / x
    assert torch.isclose(ratio, torch.tensor(0.0)).logical_or(
        torch.isclose(ratio, torch.tensor(2.0))).all()
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))  # same mask at every step
    assert abs((ratio[:, 0] == 0).float().mean().item() - 0.5) < 0.05


def test_recurrent_dropout_keeps_one_mask_per_sequence():
    layer, eye = _identity_rnn(8, recurrent_dropout=0.5)
    layer.set_weights([eye, eye])
    x = torch.zeros(400, 4, 8)
    x[:, 0] = torch.rand(400, 8) + 0.5
    h = layer(x, training=True).detach()  # h_t = x_0 * mask**t
    mask = h[:, 1] / h[:, 0]
    assert torch.isclose(mask, torch.tensor(0.0)).logical_or(
        torch.isclose(mask, torch.tensor(2.0))).all()
    for t in range(4):
        torch.testing.assert_close(h[:, t], x[:, 0] * mask**t)
    assert abs((mask == 0).float().mean().item() - 0.5) < 0.05


def test_fused_path_applies_the_input_mask_to_every_step(monkeypatch):
    seen = []
    real = torch.lstm
    monkeypatch.setattr(torch, "lstm", lambda x, *rest: seen.append(x) or real(x, *rest))
    layer = layers.LSTM(3, dropout=0.5)
    x = torch.rand(200, 5, 6) + 0.5
    layer(x, training=True)
    ratio = seen[-1] / x
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert set(torch.unique(ratio.round(decimals=4)).tolist()) == {0.0, 2.0}


def test_recurrent_dropout_draws_a_mask_per_gate_as_keras():
    layer = layers.LSTM(3, dropout=0.2, recurrent_dropout=0.2)
    inputs, state = layer._dropout_masks(torch.zeros(2, 5, 6), training=True)
    assert tuple(inputs.shape) == (4, 2, 6) and tuple(state.shape) == (4, 2, 3)
    inputs, state = layers.GRU(3, dropout=0.2)._dropout_masks(torch.zeros(2, 5, 6), training=True)
    assert tuple(inputs.shape) == (1, 2, 6) and state is None


def test_seeded_dropout_repeats():
    x = torch.ones(4, 3, 2)
    first, second = layers.GRU(2, dropout=0.5, seed=7), layers.GRU(2, dropout=0.5, seed=7)
    first(x)
    second(x)
    second.set_weights(first.get_weights())
    torch.testing.assert_close(first(x, training=True), second(x, training=True))


@pytest.mark.parametrize("wrap", [False, True])
def test_predict_mc_switches_rnn_dropout_on(wrap, x):
    rnn = layers.LSTM(4, dropout=0.5)
    model = lamina.Sequential([layers.Input((6, 4)), layers.Bidirectional(rnn) if wrap else rnn,
                               layers.Dense(1)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    mc = model.predict_mc(x, samples=8)
    assert mc.mean.shape == (3, 1) and (mc.std > 0).all()


# ----------------------------------------------------------------- fused kernel
@pytest.mark.parametrize("name", RNNS)
def test_default_configuration_runs_the_fused_kernel(name, spy, x):
    layer = getattr(layers, name)(5, return_sequences=True)
    layer(torch.as_tensor(x))
    layer(torch.as_tensor(x), mask=mask_of("right_padded"))
    layer(torch.as_tensor(x), mask=mask_of("left_padded"))
    assert spy == {FUSED[name]: 3}


@pytest.mark.parametrize("name, options, training, mask", [
    ("LSTM", {"recurrent_dropout": 0.2}, True, None),
    ("LSTM", {"recurrent_activation": "hard_sigmoid"}, False, None),
    ("GRU", {"reset_after": False}, False, None),
    ("GRU", {}, False, "holes"),
    ("SimpleRNN", {"activation": "softsign"}, False, None),
])
def test_other_configurations_run_the_step_loop(name, options, training, mask, spy, x):
    layer = getattr(layers, name)(5, **options)
    kwargs = {} if mask is None else {"mask": mask_of(mask)}
    layer(torch.as_tensor(x), training=training, **kwargs)
    assert spy == {}


def test_recurrent_dropout_in_inference_stays_fused(spy, x):
    layers.LSTM(5, recurrent_dropout=0.3)(torch.as_tensor(x))
    assert spy == {"lstm": 1}


def test_relu_simple_rnn_runs_the_fused_relu_kernel(spy, x):
    layers.SimpleRNN(5, activation="relu")(torch.as_tensor(x))
    assert spy == {"rnn_relu": 1}


# ----------------------------------------------------------------- masks in and out
def test_mask_arrives_on_the_input_and_leaves_on_the_sequence(x):
    inputs = torch.as_tensor(x)
    inputs._lamina_mask = mask_of("holes")
    sequence = layers.GRU(2, return_sequences=True)(inputs)
    last = layers.GRU(2)(inputs)
    assert torch.equal(sequence._lamina_mask, mask_of("holes"))
    assert getattr(last, "_lamina_mask", None) is None
    sequence, h = layers.GRU(2, return_sequences=True, return_state=True)(inputs)
    assert torch.equal(sequence._lamina_mask, mask_of("holes"))
    assert getattr(h, "_lamina_mask", None) is None
    reference = layers.GRU(2)
    reference(torch.as_tensor(x), mask=mask_of("holes"))
    plain = layers.GRU(2)
    plain(torch.as_tensor(x))
    plain.set_weights(reference.get_weights())
    torch.testing.assert_close(plain(inputs), reference(torch.as_tensor(x), mask=mask_of("holes")))


def test_masks_from_embedding_and_masking_match_keras(rng):
    tokens = np.array([[0, 0, 3, 4, 5, 1], [2, 3, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6], [0] * 6])
    series = rng.standard_normal((4, 6, 3)).astype("float32")
    series[0, 4:] = 0
    series[1, 2] = 0

    def embedded(api):
        return api.Sequential([
            api.layers.Input((6,)), api.layers.Embedding(7, 4, mask_zero=True),
            api.layers.Bidirectional(api.layers.LSTM(5, return_sequences=True)), api.layers.GRU(3)])

    def masked(api):
        return api.Sequential([api.layers.Input((6, 3)), api.layers.Masking(0.0),
                               api.layers.SimpleRNN(5, return_sequences=True), api.layers.LSTM(2)])

    for build, data in ((embedded, tokens), (masked, series)):
        ours, theirs = build(lamina), build(keras)
        ours.set_weights(theirs.get_weights())
        np.testing.assert_allclose(ours.predict(data, verbose=0), theirs.predict(data, verbose=0),
                                   atol=1e-5)


# ----------------------------------------------------------------- config
@pytest.mark.parametrize("layer", [
    layers.LSTM(3, activation="relu", unit_forget_bias=False, dropout=0.1, go_backwards=True,
                kernel_regularizer="l2", return_state=True),
    layers.GRU(3, reset_after=False, recurrent_dropout=0.2, stateful=True, seed=3),
    layers.SimpleRNN(3, use_bias=False, return_sequences=True, unroll=True),
    layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="sum"),
], ids=["LSTM", "GRU", "SimpleRNN", "Bidirectional"])
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("name", RNNS)
def test_wrong_rank_or_width_names_the_layer(name):
    layer = getattr(layers, name)(3, name="encoder")
    with pytest.raises(ValueError, match=r"'encoder' expects input of shape \(batch, timesteps, "):
        layer(torch.zeros(2, 4))
    layer(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match=r"layer 'encoder'.*axis -1.*value 4"):
        layer(torch.zeros(2, 5, 6))
    with pytest.raises(ValueError, match=r"layer 'encoder'.*expected ndim=3"):
        layer(torch.zeros(2, 5, 1, 4))


def test_bad_initial_state_and_mask_name_the_layer():
    layer = layers.LSTM(3, name="decoder")
    x = torch.zeros(2, 5, 4)
    with pytest.raises(ValueError, match=r"'decoder' takes 2 initial state tensor\(s\) \(h, c\)"):
        layer(x, initial_state=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"'decoder': initial state 'c' must have shape .*\(2, 3\)"):
        layer(x, initial_state=[torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"'decoder': the mask must have shape .*\(2, 5\)"):
        layer(x, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'decoder' received a sequence of 0 timesteps"):
        layer(torch.zeros(2, 0, 4))
    bi = layers.Bidirectional(layers.GRU(3), name="both")
    with pytest.raises(ValueError, match=r"'both' takes 2 initial state tensors"):
        bi(x, initial_state=[torch.zeros(2, 3)])


@pytest.mark.parametrize("make, message", [
    (lambda: layers.LSTM(0), r"LSTM: `units` must be a positive int. Received: units=0"),
    (lambda: layers.GRU(2, dropout=1.0), r"GRU: `dropout` .* \[0, 1\). Received: dropout=1.0"),
    (lambda: layers.SimpleRNN(2, recurrent_dropout=-0.1), r"Received: recurrent_dropout=-0.1"),
    (lambda: layers.LSTM(2, activation="tanhh"), r"Unknown activation: 'tanhh'. Did you mean 'tanh'"),
    (lambda: layers.Bidirectional(layers.LSTM(2), merge_mode="max"), r"Received: merge_mode='max'"),
    (lambda: layers.Bidirectional(layers.Dense(2)), r"`layer` must be a recurrent layer"),
    (lambda: layers.Bidirectional(layers.LSTM(2, go_backwards=True)), r"opposite directions"),
    (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2, go_backwards=True,
                                                                            return_sequences=True)),
     r"agree on `return_sequences`"),
])
def test_invalid_arguments_are_clear(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
def test_a_graph_with_no_mask_builds_without_running_the_steps(kind, monkeypatch):
    # The output shape comes from compute_output_shape; running the layer on zeros (a Python
    # loop over every step) made a file declaring 30,000 steps take minutes to load.
    cls = getattr(lamina.layers, kind)
    runs = []
    monkeypatch.setattr(cls, "call", lambda self, *a, **k: runs.append(1))
    model = lamina.Sequential([lamina.Input((30_000, 4)), cls(8, return_sequences=True), cls(3)])
    assert model.output_shape == (None, 3) and not runs
