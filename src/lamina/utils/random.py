"""Seeding: one call seeds Python, numpy and torch, as keras.utils.set_random_seed."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_random_seed(seed: int) -> None:
    if not isinstance(seed, int):
        raise ValueError(f"set_random_seed: `seed` must be an int. Received: seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
