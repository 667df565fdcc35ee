"""Each lamina op against Keras' own op (torch backend) on the same inputs: values and dtypes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from lamina import ops

rng = np.random.default_rng(0)
F = rng.normal(size=(3, 4)).astype("float32")          # a float matrix
G = rng.normal(size=(3, 4)).astype("float32")
P = rng.uniform(0.1, 2.0, size=(3, 4)).astype("float32")  # positive
U = rng.uniform(-0.9, 0.9, size=(3, 4)).astype("float32")  # inside (-1, 1)
I = rng.integers(0, 5, size=(3, 4)).astype("int32")     # an int matrix
B = F > 0                                               # a bool matrix
X3 = rng.normal(size=(2, 3, 4)).astype("float32")
SQ = rng.normal(size=(4, 4)).astype("float32")
PROBS = np.exp(F) / np.exp(F).sum(-1, keepdims=True)
ONEHOT = np.eye(4, dtype="float32")[[0, 3, 1]]
LABELS = np.array([0, 3, 1], dtype="int32")
IMG = rng.normal(size=(2, 6, 6, 3)).astype("float32")
SEQ = rng.normal(size=(2, 7, 3)).astype("float32")
Q = rng.normal(size=(2, 5, 2, 4)).astype("float32")
K = rng.normal(size=(2, 6, 2, 4)).astype("float32")
V = rng.normal(size=(2, 6, 2, 4)).astype("float32")
ATT_MASK = rng.uniform(size=(2, 2, 5, 6)) > 0.3
NAN = np.where(F > 1.0, np.nan, F).astype("float32")

# (op name, args, kwargs): the same call is made on keras.ops and lamina.ops.
CASES = [
    *[(name, (F,), {}) for name in (
        "abs", "absolute", "negative", "square", "exp", "expm1", "sin", "cos", "tan", "tanh",
        "arctan", "sinh", "cosh", "arcsinh", "sign", "floor", "ceil", "round", "trunc", "isnan",
        "isfinite", "isinf", "copy", "ravel", "relu", "relu6", "sigmoid", "softmax", "log_softmax",
        "softplus", "softsign", "silu", "swish", "gelu", "elu", "selu", "leaky_relu", "hard_sigmoid",
        "log_sigmoid", "hard_silu", "celu", "erf", "logical_not", "sort", "argsort",
        "cumsum", "cumprod", "flip", "transpose", "mean", "sum", "max", "min", "prod", "std", "var",
        "argmax", "argmin", "all", "any", "logsumexp", "norm", "count_nonzero", "stop_gradient",
        "zeros_like", "ones_like", "amax", "amin", "median", "hard_tanh", "squareplus",
        "soft_shrink", "tanh_shrink", "sparse_plus", "glu", "shape", "ndim", "size", "triu", "tril",
        "diag", "trace", "cbrt")],
    *[(name, (P,), {}) for name in ("sqrt", "log", "log1p", "log2", "log10", "reciprocal", "rsqrt")],
    *[(name, (U,), {}) for name in ("arcsin", "arccos", "arctanh", "erfinv")],
    *[(name, (I,), {}) for name in (
        "abs", "square", "sqrt", "exp", "mean", "sum", "max", "prod", "cumsum", "argmax", "argsort",
        "sort", "negative", "sign", "std", "var", "tanh", "round", "floor", "relu", "sigmoid",
        "count_nonzero", "trace", "flip", "median")],
    *[(name, (B,), {}) for name in ("sum", "all", "any", "logical_not", "mean", "cumsum")],
    *[(name, (F, G), {}) for name in (
        "add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "equal",
        "not_equal", "greater", "greater_equal", "less", "less_equal", "arctan2", "mod", "floor_divide",
        "divide_no_nan")],
    *[(name, (I, I + 1), {}) for name in (
        "add", "subtract", "multiply", "divide", "maximum", "floor_divide", "mod", "power", "equal")],
    *[(name, (B, ~B), {}) for name in ("logical_and", "logical_or", "logical_xor")],
    *[(name, (F, 2.0), {}) for name in ("add", "multiply", "power", "maximum", "minimum", "subtract",
                                          "divide", "greater")],
    *[(name, (I, 2), {}) for name in ("add", "multiply", "power", "maximum", "subtract", "divide")],
    ("add", (I, 2.5), {}), ("multiply", (2.0, F), {}), ("maximum", (0.0, F), {}),
    ("power", (P, 0.5), {}),
    *[(name, (F,), {"axis": 1}) for name in (
        "mean", "sum", "max", "min", "prod", "std", "var", "argmax", "argmin", "all", "any",
        "logsumexp", "norm", "cumsum", "sort", "argsort", "softmax", "log_softmax", "flip", "median",
        "count_nonzero")],
    *[(name, (X3,), {"axis": (0, 2), "keepdims": True}) for name in (
        "mean", "sum", "max", "min", "std", "var", "all", "any", "prod", "amax")],
    *[(name, (X3,), {"axis": -1, "keepdims": True}) for name in (
        "mean", "argmax", "argmin", "logsumexp", "norm", "max")],
    ("max", (F,), {"initial": 0.5}), ("min", (F,), {"axis": 0, "initial": -0.5}),
    ("norm", (F,), {"ord": 1, "axis": -1}), ("norm", (F,), {"ord": "fro"}),
    ("norm", (X3,), {"axis": (1, 2)}), ("normalize", (F,), {}), ("normalize", (F,), {"axis": 0, "order": 1}),
    ("concatenate", ([F, G],), {}), ("concatenate", ([F, G],), {"axis": -1}),
    ("concatenate", ([F, I],), {"axis": 1}), ("stack", ([F, G],), {}), ("stack", ([F, G],), {"axis": -1}),
    ("hstack", ([F, G],), {}), ("vstack", ([F, G],), {}), ("append", (F, G), {"axis": 0}),
    ("expand_dims", (F, -1), {}), ("expand_dims", (F, 0), {}), ("expand_dims", (F, (0, 3)), {}),
    ("expand_dims", (F, (-1, 0)), {}), ("expand_dims", (F, (1, -2)), {}),
    ("argmax", (F,), {"keepdims": True}), ("argmin", (X3,), {"keepdims": True}),
    ("prod", (X3,), {"axis": (0, 2)}),
    ("squeeze", (F[:, :1],), {}), ("squeeze", (X3[:1],), {"axis": 0}),
    ("reshape", (X3, (6, 4)), {}), ("reshape", (X3, (-1,)), {}), ("reshape", (X3, (2, -1)), {}),
    ("transpose", (X3, (1, 0, 2)), {}), ("swapaxes", (X3, 0, 2), {}), ("moveaxis", (X3, 0, -1), {}),
    ("tile", (F, (2, 1)), {}), ("tile", (F, 2), {}), ("repeat", (F, 2), {}), ("repeat", (F, 3), {"axis": 1}),
    ("repeat", (F, np.array([1, 2, 0])), {"axis": 0}), ("broadcast_to", (F[:1], (3, 4)), {}),
    ("matmul", (F, G.T), {}), ("matmul", (X3, SQ), {}), ("matmul", (I, I.T), {}), ("dot", (F, G.T), {}),
    ("dot", (X3, SQ), {}), ("einsum", ("ij,kj->ik", F, G), {}), ("einsum", ("bij->bji", X3), {}),
    ("tensordot", (X3, SQ), {"axes": 1}), ("tensordot", (F, G), {"axes": 2}),
    ("tensordot", (F, G), {"axes": (1, 1)}), ("outer", (F[0], G[0]), {}), ("inner", (F, G), {}),
    ("where", (B, F, G), {}), ("where", (B, F, 0.0), {}), ("where", (B, 1, 0), {}), ("where", (B,), {}),
    ("clip", (F, -0.5, 0.5), {}), ("clip", (I, 1, 3), {}),
    ("cast", (F, "int32"), {}), ("cast", (I, "float32"), {}), ("cast", (F, "float16"), {}),
    ("cast", (B, "float32"), {}),
    ("convert_to_tensor", (F,), {}), ("convert_to_tensor", ([1.0, 2.0],), {}),
    ("convert_to_tensor", ([1, 2],), {}), ("convert_to_tensor", (3.0,), {}),
    ("convert_to_tensor", (F.astype("float64"),), {}), ("convert_to_tensor", (F,), {"dtype": "float16"}),
    ("convert_to_tensor", (I.astype("int64"),), {}),
    ("arange", (5,), {}), ("arange", (1, 7, 2), {}), ("arange", (0.0, 1.0, 0.25), {}),
    ("arange", (5,), {"dtype": "float32"}), ("linspace", (0, 1, 5), {}),
    ("linspace", (0, 1, 4), {"endpoint": False}),
    ("zeros", ((2, 3),), {}), ("ones", ((2, 3),), {}), ("zeros", ((2,),), {"dtype": "int32"}),
    ("full", ((2, 3), 7.0), {}), ("full", ((2, 3), 7), {}), ("full_like", (F, 3.0), {}),
    ("full_like", (I, 2), {}), ("zeros_like", (F,), {"dtype": "int32"}), ("ones_like", (I,), {}),
    ("eye", (3,), {}), ("eye", (3, 4), {"k": 1}), ("identity", (3,), {}), ("tri", (3,), {}),
    ("take", (F, LABELS), {"axis": 1}), ("take", (F, [0, 2]), {"axis": 0}), ("take", (F, 5), {}),
    ("take", (F, np.array([[0, 1], [2, 2]])), {"axis": 0}), ("take", (F, [-1]), {"axis": 1}),
    ("take_along_axis", (F, np.argsort(F, axis=1)), {"axis": 1}),
    ("take_along_axis", (F, np.zeros((1, 4), dtype="int32")), {"axis": 0}),
    ("split", (F, 2), {"axis": 1}), ("split", (F, [1, 2]), {"axis": 0}), ("array_split", (F, 2), {}),
    ("roll", (F, 1), {}), ("roll", (F, -1), {"axis": 1}), ("roll", (F, (1, 2)), {"axis": (0, 1)}),
    ("round", (F * 10,), {"decimals": 1}), ("nan_to_num", (np.array([np.nan, np.inf, -np.inf, 1.0]),), {}),
    ("nan_to_num", (np.array([np.nan, np.inf], "float32"),), {"nan": 1.0, "posinf": 9.0}),
    ("pad", (F, ((1, 1), (0, 2))), {}), ("pad", (F, ((1, 1), (2, 2))), {"mode": "reflect"}),
    ("pad", (F, ((1, 0), (0, 1))), {"constant_values": 2.0}),
    ("triu", (SQ, 1), {}), ("tril", (SQ, -1), {}), ("diag", (F[0],), {}), ("diag", (SQ,), {"k": 1}),
    ("diagonal", (X3,), {"axis1": 1, "axis2": 2}), ("isclose", (F, F + 1e-9), {}),
    ("average", (F,), {"axis": 1, "weights": P[0]}), ("average", (F,), {}),
    ("quantile", (F, 0.3), {"axis": 1}), ("diff", (F,), {}), ("meshgrid", (F[0], G[0, :3]), {}),
    ("top_k", (F, 2), {}), ("top_k", (I, 3), {}), ("in_top_k", (LABELS, F, 2), {}),
    ("one_hot", (LABELS, 4), {}), ("one_hot", (np.array([0, -1, 3]), 4), {}),
    ("one_hot", (LABELS, 4), {"axis": 0, "dtype": "int32"}),
    ("multi_hot", (np.array([[0, 2], [1, 1]]), 4), {}),
    ("binary_crossentropy", (B.astype("float32"), 1 / (1 + np.exp(-F))), {}),
    ("binary_crossentropy", (B.astype("float32"), F), {"from_logits": True}),
    ("categorical_crossentropy", (ONEHOT, PROBS), {}),
    ("categorical_crossentropy", (ONEHOT, F), {"from_logits": True}),
    ("sparse_categorical_crossentropy", (LABELS, PROBS), {}),
    ("sparse_categorical_crossentropy", (LABELS, F), {"from_logits": True}),
    ("moments", (X3, (0, 1)), {}), ("moments", (X3, [2]), {"keepdims": True}),
    ("batch_normalization", (F, G[0], P[0], -1), {"offset": F[0], "scale": P[1]}),
    ("segment_sum", (F, np.array([0, 1, 1])), {"num_segments": 2}),
    ("segment_max", (F, np.array([0, 1, 1])), {"num_segments": 2}),
    ("relu", (2.0,), {}), ("full", ((2,), 7), {"dtype": "int32"}),
    ("leaky_relu", (F,), {"negative_slope": 0.1}), ("gelu", (F,), {"approximate": False}),
    ("elu", (F,), {"alpha": 0.5}), ("softmax", (X3,), {"axis": 1}),
    ("conv", (IMG, rng.normal(size=(3, 3, 3, 5)).astype("float32")), {}),
    ("conv", (IMG, rng.normal(size=(3, 3, 3, 5)).astype("float32")), {"strides": 2, "padding": "same"}),
    ("conv", (SEQ, rng.normal(size=(2, 3, 4)).astype("float32")), {"padding": "same", "dilation_rate": 2}),
    ("depthwise_conv", (IMG, rng.normal(size=(3, 3, 3, 2)).astype("float32")), {"padding": "same"}),
    ("max_pool", (IMG, 2), {}), ("max_pool", (IMG, 3), {"strides": 2, "padding": "same"}),
    ("average_pool", (SEQ, 2), {}), ("average_pool", (IMG, 3), {"strides": 1, "padding": "same"}),
    ("dot_product_attention", (Q, K, V), {}), ("dot_product_attention", (Q, K, V), {"mask": ATT_MASK}),
    ("dot_product_attention", (Q, K, V), {"scale": 0.3, "bias": ATT_MASK.astype("float32")}),
    ("dot_product_attention", (Q, Q, Q), {"is_causal": True}),
    ("slice", (X3, (0, 1, 1), (2, 2, 3)), {}), ("slice_update", (F, (1, 1), np.ones((2, 2), "float32")), {}),
    ("scatter", (np.array([[0, 1], [2, 2], [0, 1]]), np.array([1.0, 2.0, 3.0], "float32"), (3, 3)), {}),
    ("scatter_update", (F, np.array([[0, 1], [2, 2]]), np.array([9.0, 8.0], "float32")), {}),
    ("unstack", (X3,), {"axis": 1}), ("get_item", (X3, 1), {}),
    *[(name, (F,), {}) for name in ("fabs", "deg2rad", "rad2deg", "signbit", "fliplr", "flipud",
                                     "ptp", "nonzero", "erfc")],
    *[(name, (F, G), {}) for name in ("hypot", "fmod", "fmax", "fmin", "logaddexp", "logaddexp2",
                                       "heaviside", "allclose", "kron")],
    ("vdot", (F[0], G[0]), {}),
    ("isneginf", (np.array([-np.inf, 1.0, np.inf], "float32"),), {}),
    ("isposinf", (np.array([-np.inf, 1.0, np.inf], "float32"),), {}),
    ("isin", (I, np.array([1, 3], "int32")), {}), ("ptp", (X3,), {"axis": 1}),
    ("percentile", (F, 30.0), {"axis": 0}), ("nansum", (NAN,), {"axis": 1}), ("nanmean", (NAN,), {}),
    ("nanmax", (NAN,), {"axis": 0}), ("nanmin", (NAN,), {}),
    ("vsplit", (F, 3), {}), ("hsplit", (F, 2), {}), ("dstack", ([F, G],), {}), ("rot90", (F,), {}),
    ("rot90", (X3,), {"k": 2, "axes": (1, 2)}),
    ("searchsorted", (np.array([1.0, 2.0, 3.0], "float32"), F), {}),
    ("searchsorted", (np.array([1, 2, 3], "int32"), I), {"side": "right"}),
    ("digitize", (F, np.array([-1.0, 0.0, 1.0], "float32")), {}),
    ("bincount", (np.array([0, 2, 2, 5], "int32"),), {}),
    ("bincount", (np.array([0, 2, 2], "int32"),), {"weights": np.array([0.5, 1.0, 2.0], "float32"),
                                                    "minlength": 4}),
    ("layer_normalization", (X3,), {}), ("layer_normalization", (X3, P[0], G[0]), {"epsilon": 1e-5}),
    ("rms_normalization", (X3,), {}), ("rms_normalization", (X3, P[0]), {"epsilon": 1e-5}),
    ("pinv", (SQ,), {}), ("slogdet", (SQ,), {}), ("svd", (SQ,), {"compute_uv": False}),
]


IMAGE_CASES = [
    ("resize", (IMG, (9, 4)), {}), ("resize", (IMG, (3, 3)), {"interpolation": "nearest"}),
    ("resize", (IMG, (3, 4)), {"antialias": True}),
    ("resize", (IMG[0], (8, 8)), {"interpolation": "bicubic"}),
    ("resize", (IMG, (3, 5)), {"crop_to_aspect_ratio": True}),
    ("resize", (IMG, (3, 5)), {"pad_to_aspect_ratio": True, "fill_value": 0.5}),
    ("extract_patches", (IMG, 2), {}), ("extract_patches", (IMG, (3, 2)), {"strides": (1, 2)}),
    ("extract_patches", (IMG[0], 3), {}),
]


def _leaves(out):
    if isinstance(out, (list, tuple)) and not (out and isinstance(out[0], int)):
        return [leaf for item in out for leaf in _leaves(item)]
    return [out]


def _numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _dtype_name(value):
    if isinstance(value, torch.Tensor):
        return str(value.dtype).removeprefix("torch.")
    return type(value).__name__


@pytest.mark.parametrize("name, args, kwargs", CASES,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_op_matches_keras(name, args, kwargs):
    # Keras' torch backend takes numpy arrays in most ops but not all (stop_gradient, unstack):
    # it gets torch tensors, lamina the numpy arrays.
    as_torch = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
    expected = getattr(keras.ops, name)(*as_torch, **kwargs)
    got = getattr(ops, name)(*args, **kwargs)
    exp_leaves, got_leaves = _leaves(expected), _leaves(got)
    assert len(exp_leaves) == len(got_leaves)
    for e, g in zip(exp_leaves, got_leaves):
        assert _dtype_name(g) == _dtype_name(e), f"{name}: dtype {_dtype_name(g)} vs Keras {_dtype_name(e)}"
        assert _numpy(g).shape == _numpy(e).shape, name
        np.testing.assert_allclose(_numpy(g), _numpy(e), rtol=1e-5, atol=1e-6, err_msg=name)


def test_pad_with_one_width_pads_every_axis_as_numpy():
    # Keras' torch backend pads only the last axis for pad_width=1; numpy (Keras' documented
    # behaviour) pads every axis.
    np.testing.assert_array_equal(ops.pad(F, 1).numpy(), np.pad(F, 1))


def test_average_pool_same_with_stride_counts_only_cells_inside():
    # TensorFlow's "same" average (and lamina's AveragePooling2D): the odd padded cell goes after
    # and is not counted. Hand-computed on a 6x6 ramp, 3x3 windows, stride 2.
    image = np.arange(36, dtype="float32").reshape(1, 6, 6, 1)
    out = ops.average_pool(image, 3, strides=2, padding="same")[0, ..., 0].numpy()
    assert out[0, 2] == pytest.approx((4 + 5 + 10 + 11 + 16 + 17) / 6)
    assert out[2, 2] == pytest.approx((28 + 29 + 34 + 35) / 4)


@pytest.mark.parametrize("name, args, kwargs", IMAGE_CASES,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(IMAGE_CASES)])
def test_image_op_matches_keras(name, args, kwargs):
    expected = getattr(keras.ops.image, name)(*args, **kwargs)
    got = getattr(ops.image, name)(*args, **kwargs)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_allclose(got.numpy(), _numpy(expected), rtol=1e-5, atol=1e-5, err_msg=name)


def test_namespaces_are_keras():
    """Each op at Keras' paths: every name of ops.numpy / nn / math / linalg / core / image is one
    of Keras' ops there (keras.src.ops.<module>, since keras.ops has no math or core attribute),
    and the same function at the top level, as in Keras."""
    import keras.src.ops as keras_ops

    for module in ("numpy", "nn", "math", "linalg", "core", "image"):
        ours = set(getattr(ops, module).__all__) - {"standardize_dtype"}  # Keras' keras.backend name
        assert ours, module
        public = getattr(keras.ops, module, None)  # keras.ops.nn has aliases (swish) the source lacks
        unknown = sorted(n for n in ours if not hasattr(getattr(keras_ops, module), n)
                         and not hasattr(public, n))
        assert not unknown, f"ops.{module} names that Keras' ops.{module} lacks: {unknown}"
        for name in ours:
            if module != "image":  # Keras keeps the image ops under ops.image only
                assert getattr(ops, name) is getattr(getattr(ops, module), name), name
    assert ops.nn.relu is ops.relu and ops.numpy.mean is ops.mean and ops.math.top_k is ops.top_k
    import lamina

    assert lamina.ops is ops
