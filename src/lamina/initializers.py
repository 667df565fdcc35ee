"""Weight initializers with Keras' names, defaults and fan computation.

Every initializer is called with the weight's *Keras* shape (a conv kernel is (k..., in, filters)),
so fan-in and fan-out come out exactly as Keras computes them, whatever layout the layer keeps.
"""

from __future__ import annotations

import math

import torch

from lamina.utils.config_dicts import from_config_dict, to_config_dict
from lamina.utils.naming import lookup

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
    "LecunNormal", "Orthogonal", "Identity", "get", "serialize", "deserialize",
]

# A standard normal truncated at two standard deviations has this standard deviation.
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape):
    """Keras' fan-in/fan-out: the last axis is the output, the one before it the input."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    def __call__(self, shape, dtype=torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(shape, dtype=dtype)


class Constant(Initializer):
    """A scalar everywhere, or (as Keras, which multiplies the value by ones of the shape) an
    array broadcast to the weight's Keras shape: e.g. a fixed (kernel_size, 1, 1) filter for
    a Conv1D kernel of any channel count."""

    def __init__(self, value=0.0):
        # An array is kept as nested lists, so that the config stays JSON.
        self.value = value.tolist() if hasattr(value, "tolist") else value

    def __call__(self, shape, dtype=torch.float32):
        value = torch.as_tensor(self.value, dtype=dtype)
        try:
            fits = torch.broadcast_shapes(value.shape, tuple(shape)) == tuple(shape)
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"Constant: a value of shape {tuple(value.shape)} does not broadcast "
                             f"to the weight's shape {tuple(shape)}.")
        return value * torch.ones(shape, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=torch.float32):
        return torch.empty(shape, dtype=dtype).normal_(self.mean, self.stddev, generator=_gen(self.seed))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=torch.float32):
        return torch.empty(shape, dtype=dtype).uniform_(self.minval, self.maxval, generator=_gen(self.seed))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=torch.float32):
        return _truncated_normal(shape, self.mean, self.stddev, dtype, self.seed)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if input_axes is not None or output_axes is not None:  # Keras 3.13+'s custom fan axes
            raise ValueError(f"{type(self).__name__}: lamina computes fans from the last two axes only; "
                             f"input_axes/output_axes must be None. Received: {input_axes}, {output_axes}")
        if scale <= 0:
            raise ValueError(f"VarianceScaling: `scale` must be positive. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(
                f"VarianceScaling: `mode` must be 'fan_in', 'fan_out' or 'fan_avg'. Received: mode={mode!r}"
            )
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                "VarianceScaling: `distribution` must be 'truncated_normal', 'untruncated_normal' or "
                f"'uniform'. Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = compute_fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return torch.empty(shape, dtype=dtype).uniform_(-limit, limit, generator=_gen(self.seed))
        if self.distribution == "untruncated_normal":
            std = math.sqrt(variance)
            return torch.empty(shape, dtype=dtype).normal_(0.0, std, generator=_gen(self.seed))
        return _truncated_normal(shape, 0.0, math.sqrt(variance) / _TRUNCATED_STD, dtype, self.seed)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _scaling(name, scale, mode, distribution):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config})


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """Keras' orthogonal: the shape is flattened to (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=torch.float32):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank 2 or more. Received: shape={shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = torch.empty(max(rows, cols), min(rows, cols), dtype=torch.float64)
        a.normal_(generator=_gen(self.seed))
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).to(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=torch.float32):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2D shape. Received: shape={tuple(shape)}")
        return self.gain * torch.eye(*shape, dtype=dtype)

    def get_config(self):
        return {"gain": self.gain}


def _gen(seed):
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def _truncated_normal(shape, mean, std, dtype, seed):
    return truncated_normal_values(shape, mean, std, dtype, _gen(seed))


def truncated_normal_values(shape, mean, std, dtype, generator=None, device=None):
    """Normal values within two standard deviations of the mean (Keras' truncated normal), from
    `generator` (torch's global one if None). lamina.random.truncated_normal draws them too."""
    if generator is None:
        t = torch.empty(shape, dtype=dtype, device=device)
        return torch.nn.init.trunc_normal_(t, mean, std, mean - 2 * std, mean + 2 * std)
    # trunc_normal_ takes a generator in recent torch only; draw with inverse-CDF by hand.
    lo, hi = [0.5 * (1 + math.erf(z / math.sqrt(2))) for z in (-2.0, 2.0)]
    u = torch.empty(shape, dtype=torch.float64, device=device).uniform_(lo, hi, generator=generator)
    return (mean + std * math.sqrt(2) * torch.erfinv(2 * u - 1)).to(dtype)


_NAMES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity,
    # Keras' short aliases; after the full names so that serialize() prefers those.
    "uniform": RandomUniform, "normal": RandomNormal, "one": Ones, "zero": Zeros,
}


def get(identifier) -> Initializer:
    """An initializer from a Keras name, a config dict, an Initializer or a plain callable."""
    if isinstance(identifier, Initializer) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    return lookup("initializer", identifier, _NAMES)()


def serialize(initializer) -> dict:
    """Keras' config dict of an initializer: {"module": "keras.initializers", "class_name", ...}."""
    return to_config_dict(initializer, "keras.initializers", _by_class_name())


def deserialize(config, custom_objects=None) -> Initializer:
    """An initializer from a Keras name or config dict (as `serialize` writes and Keras saves)."""
    if isinstance(config, str):
        return get(config)
    return from_config_dict("initializer", config, _by_class_name(), custom_objects)


def _by_class_name():
    return {cls.__name__: cls for cls in _NAMES.values()}
