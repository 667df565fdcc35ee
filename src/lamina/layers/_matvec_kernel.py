"""Names the model-level Dense chain (`models/_dense_chain.py`) reads; the compiled loops and
their operators live in `lamina.kernels.linear`."""

from lamina.kernels.linear import MAX_ROWS, MIN_WEIGHTS_PER_ROW, dense_chain, library, small_linear

__all__ = ["MAX_ROWS", "MIN_WEIGHTS_PER_ROW", "dense_chain", "library", "small_linear"]
