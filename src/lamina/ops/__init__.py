"""lamina.ops: Keras 3's ops namespace over torch tensors.

`ops.mean`, `ops.concatenate`, `ops.nn.relu`, … take torch tensors, numpy arrays or numbers and
return torch tensors (gradients flow through them). Called on the symbolic tensors of a functional
model they add a node to the graph instead (see `_dispatch`). The sub-modules are Keras' own:
`ops.numpy`, `ops.nn`, `ops.math`, `ops.linalg`, `ops.core`, `ops.image`; every op but the
image ones is also at `ops.` itself, as in Keras.
"""

from lamina.ops import core, image, linalg, math, nn, numpy
from lamina.ops._dispatch import OpLayer


def _public_functions(module) -> dict:
    """The functions `module` defines for users (not the names it imports)."""
    return {name: value for name, value in vars(module).items()
            if not name.startswith("_") and callable(value) and not isinstance(value, type)
            and getattr(value, "__module__", None) == module.__name__}


for _module in (core, linalg, math, nn, numpy):
    _module.__all__ = sorted(_public_functions(_module))
    globals().update(_public_functions(_module))

del _module

__all__ = ["OpLayer", "core", "image", "linalg", "math", "nn", "numpy",
           *sorted({n for m in (core, linalg, math, nn, numpy) for n in m.__all__})]
