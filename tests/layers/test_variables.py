"""Weights with Keras' Variable API (`.value`, `.assign*`, `.numpy()`, `.name`, `.path`,
`.trainable`), `add_weight` without a name and `add_variable`, and `lamina.Variable` standalone:
checked against Keras 3 doing the same, and against torch seeing the weights as it always did."""

from __future__ import annotations

import copy
import pickle

import keras
import numpy as np
import pytest
import torch
from torch import nn

import lamina
from lamina import layers, ops


def compute_sum(k):
    """The subclassing guide's layer: a non-trainable weight updated in call."""

    class ComputeSum(k.layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

        def call(self, inputs):
            self.total.assign_add(k.ops.sum(inputs, axis=0))
            return self.total

    return ComputeSum(2)


class LaminaComputeSum(lamina.layers.Layer):
    """compute_sum(lamina)'s layer at module level, where pickle finds it."""

    def __init__(self, input_dim=2):
        super().__init__()
        self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

    def call(self, inputs):
        self.total.assign_add(ops.sum(inputs, axis=0))
        return self.total


def linear(k):
    """The guide's Linear layer, weights created in build without names."""

    class Linear(k.layers.Layer):
        def __init__(self, units=3):
            super().__init__(name="linear")
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True)
            self.b = self.add_variable((self.units,), "zeros")
            self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False, dtype="int32")

        def call(self, inputs):
            self.steps.assign_add(1)
            return k.ops.matmul(inputs, self.w.value) + self.b

    return Linear()


def test_guide_compute_sum_accumulates_as_in_keras():
    x = np.ones((2, 2), dtype="float32")
    k_layer, l_layer = compute_sum(keras), compute_sum(lamina)
    for _ in range(2):
        np.testing.assert_array_equal(l_layer(x).numpy(), keras.ops.convert_to_numpy(k_layer(x)))
    assert l_layer.total.numpy().tolist() == [4.0, 4.0]
    assert (len(l_layer.weights), len(l_layer.non_trainable_weights), len(l_layer.trainable_weights)) == \
           (len(k_layer.weights), len(k_layer.non_trainable_weights), len(k_layer.trainable_weights))


def test_nameless_weights_get_keras_names_paths_and_values(rng):
    x = rng.normal(size=(4, 5)).astype("float32")
    k_layer, l_layer = linear(keras), linear(lamina)
    k_layer(x)
    l_layer.build((4, 5))
    l_layer.set_weights(k_layer.get_weights())
    np.testing.assert_allclose(l_layer(x).detach().numpy(), keras.ops.convert_to_numpy(k_layer(x)),
                               rtol=1e-6, atol=1e-6)
    # Keras numbers unnamed variables across the session ("variable_3", ...); lamina within the
    # layer, where the names must be unique.
    assert all(w.name.startswith("variable") and w.path == f"linear/{w.name}" for w in k_layer.weights)
    assert [w.name for w in l_layer.weights] == ["variable", "variable_1", "variable_2"]
    assert [w.path for w in l_layer.weights] == ["linear/variable", "linear/variable_1", "linear/variable_2"]
    assert [w.trainable for w in l_layer.weights] == [w.trainable for w in k_layer.weights]
    assert int(l_layer.steps.numpy()) == int(keras.ops.convert_to_numpy(k_layer.steps.value)) == 2
    # torch sees each weight once, under the Keras name; the attribute is the same tensor.
    assert list(l_layer.state_dict()) == ["variable", "variable_1", "variable_2"]
    assert l_layer.w is l_layer.variable and isinstance(l_layer.w, nn.Parameter)
    assert [p is l_layer.w or p is l_layer.b for p in l_layer.parameters()] == [True, True]


def test_standalone_variable_matches_keras():
    for k in (keras, lamina):
        v = k.Variable(np.ones((2, 2), dtype="float32"), name="vv")
        v.assign(np.zeros((2, 2), dtype="float32"))
        v.assign_add(np.ones((2, 2), dtype="float32"))
        v.assign_sub(0.25)
        assert v.name == "vv" and v.path == "vv" and v.trainable
        np.testing.assert_array_equal(v.numpy(), np.full((2, 2), 0.75, dtype="float32"))
        with pytest.raises(ValueError, match="shape"):
            v.assign(np.zeros((3,), dtype="float32"))
        counter = k.Variable("zeros", shape=(3,), dtype="int32", trainable=False)
        counter.assign_add(np.array([1, 2, 3], dtype="int32"))
        assert counter.numpy().tolist() == [1, 2, 3] and not counter.trainable
        assert str(counter.numpy().dtype) == "int32"


def test_layer_weights_value_and_assign_speak_keras_shapes(rng):
    conv = layers.Conv1D(4, 3)
    conv(torch.zeros(1, 8, 2))
    kernel = conv.kernel
    assert kernel.value.shape == (3, 2, 4) and kernel.path == f"{conv.name}/kernel"
    np.testing.assert_array_equal(kernel.numpy(), conv.get_weights()[0])
    # torch's own calls (its ONNX exporter's numpy(force=True), np.asarray) see torch's order.
    assert kernel.numpy(force=True).shape == np.asarray(kernel).shape == tuple(kernel.shape) == (4, 2, 3)
    new = rng.normal(size=(3, 2, 4)).astype("float32")
    kernel.assign(new)
    np.testing.assert_array_equal(conv.get_weights()[0], new)
    bn = layers.BatchNormalization()
    bn(torch.zeros(2, 3))
    assert bn.moving_mean.name == "moving_mean" and not bn.moving_mean.trainable
    bn.moving_mean.assign([1.0, 2.0, 3.0])
    assert bn.get_weights()[2].tolist() == [1.0, 2.0, 3.0]


def test_torch_sees_parameters_and_buffers_as_before():
    dense, bn = layers.Dense(3), layers.BatchNormalization()
    model = lamina.Sequential([layers.Input((4,)), dense, bn])
    assert list(dense.state_dict()) == ["kernel", "bias"]
    assert list(bn.state_dict()) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert all(type(p) is lamina.Variable and isinstance(p, nn.Parameter) for p in model.parameters())
    assert [n for n, _ in bn.named_buffers()] == ["moving_mean", "moving_variance"]
    out = model(torch.ones(2, 4))
    assert type(out) is torch.Tensor and type(dense.kernel * 2) is torch.Tensor
    out.sum().backward()
    assert dense.kernel.grad is not None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = dense.kernel.detach().clone()
    optimizer.step()
    assert not torch.equal(before, dense.kernel.detach())


def test_copies_and_pickles_keep_the_api_and_sharing():
    layer = LaminaComputeSum()
    layer(np.ones((1, 2), dtype="float32"))
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert type(clone.total) is lamina.variables.BufferVariable
        assert clone.total is clone._buffers["variable"]
        clone.total.assign_add([1.0, 1.0])
        assert clone.total.numpy().tolist() == [2.0, 2.0]
    assert layer.total.numpy().tolist() == [1.0, 1.0]
    layer.double()  # a dtype move replaces buffers: the attribute follows, the API stays
    assert type(layer.total) is lamina.variables.BufferVariable and layer.total.dtype == torch.float64
    assert layer.total is layer._buffers["variable"]


def test_torch_compile_runs_a_model_of_variables():
    model = lamina.Sequential([layers.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(1)])
    x = torch.randn(5, 4)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


def test_add_weight_keeps_lamina_positional_form_and_checks_constraints():
    class Named(layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", (input_shape[-1], 2), "ones")

        def call(self, x):
            return x @ self.kernel

    layer = Named()
    layer(torch.ones(1, 3))
    assert list(layer.state_dict()) == ["kernel"] and layer.kernel.path == f"{layer.name}/kernel"
    with pytest.raises(NotImplementedError, match="constraint"):
        layers.Layer().add_weight(shape=(2,), constraint=lambda w: w)


def test_layer_trainable_false_freezes_variables():
    dense = layers.Dense(2)
    dense(torch.ones(1, 2))
    dense.trainable = False
    assert not dense.kernel.trainable and dense.trainable_weights == []
    bn = layers.BatchNormalization()
    bn.build((None, 2))
    with pytest.raises(ValueError, match="non-trainable buffer"):
        bn.moving_mean.trainable = True


def test_value_grad_of_a_permuted_square_kernel_is_in_keras_shape_and_applies_back():
    """The torch guide reads `v.value.grad` and hands it to `optimizer.apply`. A Dense kernel is
    kept transposed; with a square kernel the two orders share a shape, so only the mapping in
    `storage_gradient` keeps the update right. Oracle: numpy's gradient of sum(x @ W * c)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype("float32")
    c = rng.standard_normal((1, 4)).astype("float32")
    dense = lamina.layers.Dense(4, use_bias=False)
    dense.build((None, 4))
    kernel = rng.standard_normal((4, 4)).astype("float32")
    dense.set_weights([kernel])
    (dense(torch.from_numpy(x)) * torch.from_numpy(c)).sum().backward()
    expected_grad = x.T @ np.ones((5, 1), "float32") * c  # d/dW of sum((x @ W) * c), Keras' (in, units)
    np.testing.assert_allclose(dense.kernel.value.grad.numpy(), expected_grad, rtol=1e-5)
    sgd = lamina.optimizers.SGD(learning_rate=0.1)
    with torch.no_grad():
        sgd.apply([dense.kernel.value.grad], [dense.kernel])
    np.testing.assert_allclose(dense.get_weights()[0], kernel - 0.1 * expected_grad, rtol=1e-5)


def test_variables_assigned_as_attributes_are_weights_in_keras_order(tmp_path):
    """Keras tracks a Variable assigned to a layer's attribute as one of its weights, in creation
    order among those of add_weight (trainable first); lamina does the same for a lamina.Variable
    and for a torch Parameter assigned so (a transposed one kept in its strides), and they are
    in get_weights, set_weights and `.keras` files (they were left out: a saved model lost them)."""

    class KerasPair(keras.layers.Layer):
        def build(self, shape):
            self.a = self.add_weight(shape=(2,), name="a")
            self.b = keras.Variable(np.arange(3.0), name="b")
            self.c = self.add_weight(shape=(4,), name="c", trainable=False)
            self.f = keras.Variable(np.ones(6), name="f", trainable=False)
            self.d = self.add_weight(shape=(5,), name="d")

        def call(self, x):
            return x

    class Pair(layers.Layer):
        def build(self, shape):
            self.a = self.add_weight(shape=(2,), name="a")
            self.b = lamina.Variable(np.arange(3.0, dtype="float32"), name="b")
            self.c = self.add_weight(shape=(4,), name="c", trainable=False)
            self.f = lamina.Variable(np.ones(6, dtype="float32"), name="f", trainable=False)
            self.d = self.add_weight(shape=(5,), name="d")
            self.w = nn.Parameter(torch.arange(8.0).reshape(2, 4).t())  # as torch code writes it

        def call(self, x):
            return x @ self.w

    reference = KerasPair()
    reference.build((1, 4))
    layer = Pair()
    layer.build((1, 4))
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(2,), (3,), (5,), (4, 2), (4,), (6,)]  # a, b, d, w: trainable; c, f
    assert [s for s in shapes if s != (4, 2)] == [w.shape for w in reference.get_weights()]
    assert layer.trainable_weights[-1] is layer.w and layer.non_trainable_weights[-1] is layer.f
    values = [np.full(s, i, dtype="float32") for i, s in enumerate(shapes)]
    layer.set_weights(values)
    assert torch.equal(layer.w, torch.full((4, 2), 3.0)) and layer.w.stride() == (1, 4)

    model = lamina.Sequential([layers.Input((4,)), layer])
    model.save(tmp_path / "m.keras")
    loaded = lamina.load_model(tmp_path / "m.keras", custom_objects={"Pair": Pair})
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    assert len(loaded.get_weights()) == 6
