"""A Sequential's consecutive Dense layers at inference as one operator call
(models/_dense_chain.py), a compiled loop inside it where that pays: predictions against the
layers' mathematics in float64, the runs grouped where the loop can apply the activations, torch's
products inside the operator for the inputs the loop does not take, and the layers' own calls
under a gradient or autocast."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lamina
from lamina import layers
from lamina.kernels import linear as _matvec_kernel
from lamina.models import _dense_chain

pytestmark = pytest.mark.usefixtures("generic_blas")  # the routes, on every CPU

compiled = pytest.mark.skipif(_matvec_kernel.library() is None, reason="no C compiler")


@pytest.fixture
def chains(count_calls):
    """The compiled chain calls made (the rows' shapes)."""
    return count_calls(_matvec_kernel, "chain_loop")


@pytest.fixture
def operator_calls(count_calls):
    """The chain operator's calls (compiled loop inside or not)."""
    return count_calls(_dense_chain._linear_kernels, "dense_chain")


def _model(*stack, inputs=64):
    return lamina.Sequential([layers.Input((inputs,)), *stack])


def _mlp():
    return _model(layers.Dropout(0.1), layers.Dense(500, activation="relu"), layers.Dropout(0.2),
                  layers.Dense(300, activation="relu"), layers.Dense(200),
                  layers.Dense(10, activation="softmax"))


def _float64(model, x):
    """The model's inference mathematics in float64 from its weights: dropout is the identity."""
    h = torch.as_tensor(x).double()
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            bias = layer.bias.detach().double() if layer.use_bias else None
            h = F.linear(h, layer.kernel.detach().double(), bias)
            name = lamina.activations.serialize(layer.activation)
            h = {"relu": torch.relu, "linear": lambda t: t, "tanh": torch.tanh,
                 "softmax": lambda t: torch.softmax(t, -1)}[name](h)
    return h.numpy()


@compiled
@pytest.mark.parametrize("rows", [1, 5, 12])
def test_predict_runs_one_chain_and_matches_float64(rows, chains, rng):
    model = _mlp()
    x = rng.standard_normal((rows, 64)).astype("float32")
    first = model.predict(x, verbose=0)  # validates the plan through every layer's full call
    assert chains == []
    second = model.predict(x, verbose=0)
    assert len(chains) == 1
    for out in (first, second):
        np.testing.assert_allclose(out, _float64(model, x), rtol=2e-5, atol=1e-6)


def test_runs_end_where_the_loop_cannot_apply_an_activation():
    dense = [layers.Dense(8, activation="relu"), layers.Dense(8, activation="tanh"),
             layers.Dense(8), layers.Dense(8, activation="relu"), layers.Activation("relu"),
             layers.Dense(8), layers.Dense(8, use_bias=False)]
    model = _model(*dense, inputs=8)
    model.build((None, 8))
    grouped = _dense_chain.group(model.layers)
    kinds = [[l.name for l in g.layers] if isinstance(g, _dense_chain.DenseChain) else g.name
             for g in grouped]
    assert kinds == [[dense[0].name, dense[1].name], [dense[2].name, dense[3].name], dense[4].name,
                     [dense[5].name, dense[6].name]]


@compiled
def test_tanh_inside_no_bias_and_a_lone_dense(chains, rng):
    model = _model(layers.Dense(600, activation="tanh"), layers.Dense(400, use_bias=False),
                   layers.Dense(300, activation="relu"), layers.Activation("relu"),
                   layers.Dense(10))
    x = rng.standard_normal((2, 64)).astype("float32")
    model.predict(x, verbose=0)
    out = model.predict(x, verbose=0)
    assert len(chains) == 1  # [tanh] ends a run of one (no chain); then the 400 -> 300 chain
    np.testing.assert_allclose(out, _float64(model, x), rtol=2e-5, atol=1e-6)


@compiled
@pytest.mark.parametrize("case", ["grad", "many rows", "small", "autocast"])
def test_other_inputs_run_without_the_loop(case, chains, operator_calls, rng):
    """Many rows and small layers: the operator runs torch's products; a gradient or autocast:
    the layers' own calls (a differentiable graph, autocast's lower precision)."""
    model = _mlp()
    x = torch.as_tensor(rng.standard_normal((1, 64)).astype("float32"))
    if case == "grad":  # model(x) without no_grad: the weights want gradients
        model(x)
        out = model(x)
        assert out.requires_grad
    elif case == "many rows":
        x = x.repeat(_matvec_kernel.MAX_ROWS + 1, 1)
        with torch.no_grad():
            model(x)
            out = model(x)
    elif case == "small":
        model = _model(layers.Dense(4, activation="relu"), layers.Dense(3), inputs=64)
        with torch.no_grad():
            model(x)
            out = model(x)
    else:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
            out = model(x)
        assert out.dtype == torch.bfloat16
        out = out.float()
    assert chains == []
    assert len(operator_calls) == (case in ("many rows", "small"))
    tolerance = 2e-2 if case == "autocast" else 2e-5
    np.testing.assert_allclose(out.detach().double().numpy(), _float64(model, x.numpy()),
                               rtol=tolerance, atol=tolerance * 0.05)


@compiled
def test_weights_changed_between_calls_are_used(chains, rng):
    model = _mlp()
    x = rng.standard_normal((1, 64)).astype("float32")
    model.predict(x, verbose=0)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    out = model.predict(x, verbose=0)
    assert len(chains) == 1
    np.testing.assert_allclose(out, _float64(model, x), rtol=2e-5, atol=1e-6)


@compiled
def test_activations_changed_after_the_plan_are_followed(chains, rng):
    """Keras' idiom for logits: the output layer's activation set to None after building; and a
    hidden layer's changed to one the loop cannot apply (the layers' own calls then)."""
    model = _mlp()
    x = rng.standard_normal((1, 64)).astype("float32")
    model.predict(x, verbose=0)
    model.layers[-1].activation = lamina.activations.get(None)
    logits = model.predict(x, verbose=0)
    assert len(chains) == 1
    np.testing.assert_allclose(logits, _float64(model, x), rtol=2e-5, atol=1e-5)
    model.layers[1].activation = lamina.activations.get("tanh")
    out = model.predict(x, verbose=0)
    assert len(chains) == 1  # this call ran each layer
    np.testing.assert_allclose(out, _float64(model, x), rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 20])  # 20: more than the loop takes
def test_one_operator_call_where_the_loop_does_not_pay(rows, chains, operator_calls, monkeypatch, rng):
    """MKL on an Intel CPU: torch's products beat the loop, and the chain still saves each
    layer's call from Python (one operator call for the run)."""
    monkeypatch.setattr(_matvec_kernel, "blas_is_generic", lambda: False)
    model = _mlp()
    x = rng.standard_normal((rows, 64)).astype("float32")
    model.predict(x, verbose=0)
    out = model.predict(x, verbose=0)
    assert chains == [] and len(operator_calls) == 1
    np.testing.assert_allclose(out, _float64(model, x), rtol=2e-5, atol=1e-6)
