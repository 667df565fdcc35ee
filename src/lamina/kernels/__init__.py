"""lamina's operators: where its compiled CPU loops meet torch.

Each module is one op family (`normalization`, `linear`, `dropout`, `recurrent`, `conv`) of operators
registered with `torch.library` in the "lamina" namespace, each with a fake (meta) function, an
autograd formula and a vmap rule, so torch.compile, torch.export, vmap and autocast see operators
they understand. Inside an operator, one place decides between a compiled loop (float32,
contiguous, on the CPU, where `lamina._native` could build it) and torch's own ops for everything
else; layers call the operators and hold no such choice.
"""

# Importing the families registers their operators (in lamina's own namespace only).
from lamina.kernels import conv, dropout, linear, normalization, recurrent  # noqa: E402,F401
from lamina.kernels._ops import DECOMPOSITIONS  # noqa: E402,F401
