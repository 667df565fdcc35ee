"""Random tensors with Keras' `keras.random` API: normal, uniform, randint, truncated_normal,
categorical, dropout, shuffle, gamma, binomial, beta, and SeedGenerator.

Seeds work as in Keras: an int seed gives the same values at every call; a `SeedGenerator` gives
new values at each call, reproducibly from its own seed; `seed=None` draws from torch's global
generator (so `lamina.utils.set_random_seed` makes it reproducible).
"""

from __future__ import annotations

import torch

from lamina.config import get_device
from lamina.ops.core import convert_to_tensor, standardize_dtype

__all__ = ["SeedGenerator", "normal", "uniform", "randint", "truncated_normal", "categorical",
           "dropout", "shuffle", "gamma", "binomial", "beta"]


class SeedGenerator:
    """A source of seeds that advances at each use: random functions given it as `seed` return
    new values at each call, and the same sequence for the same initial seed.

    Example:
        >>> seed_gen = lamina.random.SeedGenerator(seed=42)
        >>> a = lamina.random.normal((2, 3), seed=seed_gen)
        >>> b = lamina.random.normal((2, 3), seed=seed_gen)   # differs from a
    """

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"SeedGenerator: `seed` must be an int or None. Received: seed={seed!r}")
        self.initial_seed = seed
        self.name = name or "seed_generator"
        self.calls = 0

    def next(self) -> int:
        """The seed for the next random call (a new one each time)."""
        self.calls += 1
        # Distinct, well-spread seeds from (initial seed, call count): 2**61 - 1 is prime.
        return (self.initial_seed * 1_000_003 + self.calls * 2_654_435_761) % (2**61 - 1)

    def get_config(self) -> dict:
        return {"seed": self.initial_seed, "name": self.name}


def _generator(seed, device):
    """A torch Generator for `seed` (None: torch's global one)."""
    if seed is None:
        return None
    if isinstance(seed, SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, torch.Tensor):
        seed = int(seed.flatten()[0].item())
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(
            f"`seed` must be an int, a lamina.random.SeedGenerator or None. Received: seed={seed!r}"
        )
    return torch.Generator(device=device).manual_seed(seed)


def _float_dtype(dtype):
    dtype = standardize_dtype(dtype) or torch.float32
    if not dtype.is_floating_point:
        raise ValueError(f"`dtype` must be a float dtype. Received: dtype={dtype}")
    return dtype


def _shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    device = get_device()
    out = torch.randn(_shape(shape), dtype=_float_dtype(dtype), device=device,
                      generator=_generator(seed, device))
    return out * stddev + mean


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    device = get_device()
    out = torch.rand(_shape(shape), dtype=_float_dtype(dtype), device=device,
                     generator=_generator(seed, device))
    return out * (maxval - minval) + minval


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers in [minval, maxval)."""
    device = get_device()
    dtype = standardize_dtype(dtype)
    if dtype.is_floating_point or dtype == torch.bool:
        raise ValueError(f"randint: `dtype` must be an integer dtype. Received: dtype={dtype}")
    return torch.randint(int(minval), int(maxval), _shape(shape), dtype=dtype, device=device,
                         generator=_generator(seed, device))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values redrawn until within two standard deviations of the mean, as Keras'."""
    from lamina.initializers import truncated_normal_values

    device = get_device()
    return truncated_normal_values(_shape(shape), mean, stddev, _float_dtype(dtype),
                                   _generator(seed, device), device)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """`num_samples` class indices per row of `logits` (batch, classes), drawn from its softmax."""
    logits = convert_to_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"categorical: `logits` must have shape (batch, classes). Received shape "
                         f"{tuple(logits.shape)}.")
    probabilities = torch.softmax(logits.float(), dim=-1)
    samples = torch.multinomial(probabilities, num_samples, replacement=True,
                                generator=_generator(seed, logits.device))
    return samples.to(standardize_dtype(dtype))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """`inputs` with each entry zeroed with probability `rate`, the rest scaled by 1 / (1 - rate);
    `noise_shape` (broadcast to the input's) shares one draw along its size-1 axes."""
    inputs = convert_to_tensor(inputs)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: `rate` must be in [0, 1). Received: rate={rate}")
    shape = inputs.shape if noise_shape is None else tuple(
        full if d is None else d for d, full in zip(noise_shape, inputs.shape))
    keep = torch.rand(shape, device=inputs.device, generator=_generator(seed, inputs.device)) >= rate
    return inputs * keep / (1.0 - rate)


def shuffle(x, axis=0, seed=None):
    x = convert_to_tensor(x)
    order = torch.randperm(x.shape[axis], device=x.device, generator=_generator(seed, x.device))
    return x.index_select(axis, order)


def gamma(shape, alpha, dtype=None, seed=None):
    device = get_device()
    generator = _generator(seed, device)
    concentration = torch.full(_shape(shape), float(alpha), dtype=_float_dtype(dtype), device=device)
    return torch._standard_gamma(concentration, generator=generator)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    device = get_device()
    dtype = _float_dtype(dtype)
    counts = torch.broadcast_to(convert_to_tensor(counts, dtype), _shape(shape)).to(device)
    probabilities = torch.broadcast_to(convert_to_tensor(probabilities, dtype), _shape(shape)).to(device)
    return torch.binomial(counts, probabilities, generator=_generator(seed, device))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Beta(alpha, beta) as X / (X + Y) of two gamma draws (from one seed, two streams)."""
    generator_seed = seed.next() if isinstance(seed, SeedGenerator) else seed
    x = gamma(shape, alpha, dtype, generator_seed)
    y = gamma(shape, beta, dtype, None if generator_seed is None else generator_seed + 1)
    return x / (x + y)
