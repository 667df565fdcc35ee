"""Names the model-level Dense step (`models/_dense_step.py`) reads; the operator and its routes
live in `lamina.kernels.linear`."""

from lamina.kernels.linear import linear, product, uses_onednn

__all__ = ["linear", "product", "uses_onednn"]
