"""Names the model-level Dense step (`models/_dense_step.py`) reads; the mask's operator lives in
`lamina.kernels.dropout`."""

from lamina.kernels.dropout import draw_mask, library, mask

__all__ = ["draw_mask", "library", "mask"]
