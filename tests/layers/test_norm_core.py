"""The statistics core: hand-derived backward passes checked by torch.autograd.gradcheck in float64,
the compiled float32 kernels against the eager path and float64, the view planning that makes
reductions contiguous; and make_norm, the family's factory."""

import pytest
import torch

from lamina.kernels import normalization as kernels
from lamina.kernels.normalization import normalize, normalize_with, switchable_normalize
from lamina.layers.normalization._statistics import plan

# (input shape, reduced dims, parameter shape): BatchNorm, InstanceNorm, GroupNorm, LayerNorm over
# the last axis (parameters vary along the reduced axis), ConditionalBatchNorm (per-sample params).
CASES = [
    ((12, 5), (0,), (1, 5)),
    ((3, 4, 5), (1,), (1, 1, 5)),
    ((3, 4, 2, 3), (1, 3), (1, 1, 2, 3)),
    ((6, 5), (1,), (1, 5)),
    ((3, 4, 5), (0, 1), (3, 1, 5)),
]


def _double(shape, positive=False):
    t = torch.rand(shape, dtype=torch.float64) + 0.5 if positive else torch.randn(shape, dtype=torch.float64)
    return t.requires_grad_()


@pytest.mark.parametrize("shape, dims, param_shape", CASES)
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_normalize_gradients(shape, dims, param_shape, affine):
    x = _double(shape) * 3 + 1
    x = x.detach().requires_grad_()
    weight = _double(param_shape) if affine in ("both", "weight") else None
    bias = _double(param_shape) if affine in ("both", "bias") else None
    inputs = [t for t in (x, weight, bias) if t is not None]

    def fn(*args):
        it = iter(args[1:])
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        return normalize(args[0], dims, w, b, epsilon=1e-3)[0]

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("shape, dims, param_shape", CASES)
def test_normalize_with_differentiable_statistics_gradients(shape, dims, param_shape):
    x = _double(shape)
    stat_shape = tuple(1 if d in dims else s for d, s in enumerate(shape))
    mean, var = _double(stat_shape), _double(stat_shape, positive=True)
    weight, bias = _double(param_shape), _double(param_shape)
    assert torch.autograd.gradcheck(lambda *a: normalize_with(*a, epsilon=1e-3), (x, mean, var, weight, bias))


@pytest.mark.parametrize("table_shape", [(1, 3, 1), (1, 1, 1), (1, 1, 5), (5,), (3, 1), (1, 5), (4, 1, 1)])
def test_normalize_with_tables_of_any_broadcastable_shape(table_shape):
    """Per channel (torch's batch norm inside), one value for all, and per position, with the
    leading 1s of a table written out or not (a BatchNormalization's channels_last tables are
    its (channels,) vectors): the formula in float64. A (1, 1, 1) table once passed the
    per-channel test and failed to reshape to 3; tables of lower rank than x once failed in the
    loops' indexing."""
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    mean, weight, bias = (torch.randn(table_shape, dtype=torch.float64) for _ in range(3))
    var = torch.rand(table_shape, dtype=torch.float64) + 0.5
    expected = (x - mean) / torch.sqrt(var + 1e-3) * weight + bias
    torch.testing.assert_close(normalize_with(x, mean, var, weight, bias, epsilon=1e-3), expected)
    torch.testing.assert_close(normalize_with(x.float(), mean.float(), var.float(), weight.float(),
                                              bias.float(), epsilon=1e-3), expected.float())


@pytest.mark.parametrize("using_bn, batch_statistics", [(True, True), (True, False), (False, False)])
def test_normalize_with_derived_statistics_gradients(using_bn, batch_statistics):
    """SwitchableNormalization's mixture, whose gradient is written out by hand (float64: torch's
    formulas, not the loops)."""
    x, weight, bias = _double((3, 5, 4)), _double((4,)), _double((4,))
    logits = [_double((2 + using_bn,)), _double((2 + using_bn,))]
    moving = (None, None) if batch_statistics or not using_bn else (
        torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5)
    assert torch.autograd.gradcheck(
        lambda *a: switchable_normalize(a[0], a[1], a[2], *a[3:], *moving, 1e-3, using_bn)[0],
        (x, weight, bias, *logits))


def test_normalize_values_match_a_plain_formula():
    x = torch.randn(4, 7, 3, dtype=torch.float64) * 5 + 100
    weight, bias = torch.randn(1, 1, 3, dtype=torch.float64), torch.randn(1, 1, 3, dtype=torch.float64)
    y, mean, var = normalize(x, (0, 1), weight, bias, epsilon=1e-3)
    expected = (x - x.mean((0, 1), keepdim=True)) / torch.sqrt(x.var((0, 1), keepdim=True, correction=0)
                                                              + 1e-3) * weight + bias
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(var, x.var((0, 1), keepdim=True, correction=0))


def test_plan_merges_axes_by_role_for_contiguous_reductions():
    batch_norm = plan((16, 32, 32, 64), {3}, {3})
    assert batch_norm.view == (16 * 32 * 32, 64) and batch_norm.reduce == (0,)
    assert batch_norm.param_shape == (1, 64) and batch_norm.count == 16 * 32 * 32
    instance = plan((8, 10, 12, 4), {0, 3}, {3})
    assert instance.view == (8, 120, 4) and instance.reduce == (1,) and instance.stat_shape == (8, 1, 4)
    group = plan((8, 10, 2, 3), {0, 2}, {2, 3})  # channels split into 2 groups of 3
    assert group.view == (8, 10, 2, 3) and group.reduce == (1, 3)
    one_value_each = plan((1, 5), {1}, {1})  # BatchNorm on a batch of one
    assert one_value_each.view == (5, 1) and one_value_each.reduce == (1,) and one_value_each.count == 1


@pytest.mark.parametrize("kind, cls", [
    ("bn", "BatchNormalization"), ("ln", "LayerNormalization"), ("in", "InstanceNormalization"),
    ("gn", "GroupNormalization"), ("sn", "SwitchableNormalization"), ("Instance", "InstanceNormalization"),
])
def test_make_norm_builds_each_kind_with_its_arguments(kind, cls):
    from lamina import layers

    layer = layers.make_norm(kind, epsilon=1e-5)
    assert type(layer).__name__ == cls and layer.epsilon == 1e-5
    assert layer(torch.randn(4, 6, 32), training=True).shape == (4, 6, 32)  # GN: 32 groups by default


def test_make_norm_passes_kind_specific_arguments_and_names_bad_kinds():
    from lamina import layers

    assert layers.make_norm("gn", groups=4).groups == 4
    with pytest.raises(ValueError, match=r"Unknown normalization kind: 'bnorm'. Did you mean 'bn'"):
        layers.make_norm("bnorm")


# Kernel cases: (shape, dims, param shape), with sizes that split work across threads along the
# groups or along the rows, rows that do not fill whole cache blocks, and a single column.
KERNEL_CASES = [
    ((70001, 3), (0,), (1, 3)),
    ((4, 20000, 4), (1,), (1, 1, 4)),
    ((3, 30000, 3), (0, 1), (3, 1, 3)),
    ((2, 5000, 2, 4), (1, 3), (1, 1, 2, 4)),
    ((40000, 1), (0,), (1, 1)),
    ((5, 7, 6), (1,), (1, 1, 6)),
]


def _run(shape, dims, param_shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 20).to(dtype).requires_grad_()
    weight = (torch.rand(param_shape, generator=g, dtype=torch.float64) + 0.5).to(dtype).requires_grad_()
    bias = torch.randn(param_shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    cotangent = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    y, mean, var = normalize(x, dims, weight, bias, epsilon=1e-3)
    grads = torch.autograd.grad((y * cotangent).sum(), (x, weight, bias))
    return [t.double() for t in (y, mean, var, *grads)]


@pytest.mark.skipif(kernels._statistics_library() is None, reason="no C compiler for the kernels")
@pytest.mark.parametrize("shape, dims, param_shape", KERNEL_CASES)
def test_compiled_kernels_match_float64_and_the_eager_path(shape, dims, param_shape, monkeypatch):
    torch.set_num_threads(2)  # exercise the split across threads
    reference = _run(shape, dims, param_shape, torch.float64)
    compiled = _run(shape, dims, param_shape, torch.float32)
    monkeypatch.setattr(kernels, "_on_statistics_loops", lambda *tensors: False)
    eager = _run(shape, dims, param_shape, torch.float32)
    names = ["y", "mean", "var", "dx", "dweight", "dbias"]
    for name, ref, kern, eag in zip(names, reference, compiled, eager):
        scale = ref.abs().max().item() + 1.0
        tolerance = 2e-5 * scale if name in ("y", "mean", "var", "dx") else 2e-6 * scale * shape[0]
        torch.testing.assert_close(kern, ref, atol=tolerance, rtol=1e-4, msg=f"compiled {name}")
        torch.testing.assert_close(eag, ref, atol=tolerance, rtol=1e-4, msg=f"eager {name}")


def test_layers_run_without_the_kernels(monkeypatch):
    """The eager path serves every layer when the kernels are unavailable (no C compiler)."""
    from lamina import layers

    x = torch.randn(4, 6, 8)

    def outputs():
        return [layer(x, training=True) for layer in (
            layers.BatchNormalization(), layers.InstanceNormalization(), layers.GroupNormalization(2),
            layers.SwitchableNormalization())]

    expected = outputs()
    monkeypatch.setattr(kernels, "_on_statistics_loops", lambda *tensors: False)
    for e, g in zip(expected, outputs()):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shapes", [[(5,)] * 4, [(3, 1)] * 4, [(5,), (5,), (4, 1, 5), (4, 1, 5)]])
def test_normalize_with_gradients_for_tables_of_lower_rank(shapes):
    """Gradients of x and of every table, each in its table's own shape: the same tables with
    their leading 1s left out (channels_last BatchNorm) or per sample and channel (Conditional
    BatchNorm's gamma and beta beside moving statistics)."""
    x = _double((4, 3, 5))
    mean, var = _double(shapes[0]), _double(shapes[1], positive=True)
    weight, bias = _double(shapes[2]), _double(shapes[3])
    assert torch.autograd.gradcheck(lambda *a: normalize_with(*a, epsilon=1e-3), (x, mean, var, weight, bias))


def test_channels_last_vector_tables_take_torchs_fused_batch_norm(monkeypatch):
    """(channels,) tables against (batch, steps, channels): torch's batch norm, one pass, with
    the formula's values."""
    calls = []
    real = torch.native_batch_norm
    monkeypatch.setattr(torch, "native_batch_norm", lambda *a: calls.append(a[0].shape) or real(*a))
    x = torch.randn(2, 6, 4)
    mean, var, weight, bias = torch.randn(4), torch.rand(4) + 0.5, torch.randn(4), torch.randn(4)
    with torch.no_grad():
        y = normalize_with(x, mean, var, weight, bias, epsilon=1e-3)
    assert calls == [(12, 4, 1)]
    x, mean, var, weight, bias = (t.double() for t in (x, mean, var, weight, bias))
    expected = (x - mean) / torch.sqrt(var + 1e-3) * weight + bias
    torch.testing.assert_close(y.double(), expected, rtol=1e-6, atol=1e-6)
