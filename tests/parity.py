"""The Keras oracle: the same layer built in Keras 3 (torch backend) and in lamina, with the same
weights, must give the same outputs and the same gradients with respect to its inputs."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _leaves(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def run_keras(keras_layer, inputs, training=False, **call_kwargs):
    """Outputs (numpy) and input gradients of a Keras layer for a fixed random cotangent."""
    xs = [torch.tensor(np.asarray(a), requires_grad=np.asarray(a).dtype.kind == "f")
          for a in _as_list(inputs)]
    arg = xs if isinstance(inputs, (list, tuple)) else xs[0]
    out = keras_layer(arg, training=training, **call_kwargs)
    return _outputs_and_grads(out, xs)


def run_lamina(layer, inputs, training=False, **call_kwargs):
    xs = [torch.tensor(np.asarray(a), requires_grad=np.asarray(a).dtype.kind == "f")
          for a in _as_list(inputs)]
    arg = xs if isinstance(inputs, (list, tuple)) else xs[0]
    out = layer(arg, training=training, **call_kwargs)
    return _outputs_and_grads(out, xs)


def _outputs_and_grads(out, xs):
    outs = _leaves(out)
    g = torch.Generator().manual_seed(1234)
    total = 0.0
    for o in outs:
        if o.is_floating_point() and o.requires_grad:
            total = total + (o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum()
    grads = []
    if isinstance(total, torch.Tensor) and any(x.requires_grad for x in xs):  # not for int inputs
        diff = [x for x in xs if x.requires_grad]
        got = torch.autograd.grad(total, diff, allow_unused=True)
        grads = [None if gr is None else gr.detach().numpy() for gr in got]
    return [o.detach().cpu().numpy() for o in outs], grads


def assert_parity(lamina_layer, keras_layer, inputs, atol=1e-5, rtol=1e-5, training=False,
                  **call_kwargs):
    """Build both layers on `inputs`, copy Keras' weights into lamina, compare outputs and
    input gradients. Returns the lamina outputs."""
    k_out, k_grads = run_keras(keras_layer, inputs, training, **call_kwargs)
    if not lamina_layer.built:
        xs = [torch.as_tensor(np.asarray(a)) for a in _as_list(inputs)]
        lamina_layer(xs if isinstance(inputs, (list, tuple)) else xs[0], **call_kwargs)
    lamina_layer.set_weights([np.asarray(w) for w in keras_layer.get_weights()])
    l_out, l_grads = run_lamina(lamina_layer, inputs, training, **call_kwargs)
    assert len(k_out) == len(l_out), f"{len(k_out)} Keras outputs vs {len(l_out)} lamina outputs"
    for i, (k, v) in enumerate(zip(k_out, l_out)):
        assert k.shape == v.shape, f"output {i}: Keras shape {k.shape}, lamina {v.shape}"
        np.testing.assert_allclose(v, k, atol=atol, rtol=rtol, err_msg=f"output {i}")
    for i, (k, v) in enumerate(zip(k_grads, l_grads)):
        if k is None and v is None:
            continue
        k = np.zeros_like(v) if k is None else k
        v = np.zeros_like(k) if v is None else v
        np.testing.assert_allclose(v, k, atol=atol, rtol=rtol, err_msg=f"input gradient {i}")
    return l_out


__all__ = ["keras", "assert_parity", "run_keras", "run_lamina"]
