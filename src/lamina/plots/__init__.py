"""Pictures of lamina's concepts, each returning a matplotlib Figure (needs the `plot` extra).

- `activations(names=None)`: every activation next to its derivative (from autograd).
- `history(history)`: loss and metric curves of a fit.
- `norms()`: the N × C × (H, W) cube for BN, LN, IN, GN and SN.
- `reliability(predictions)`: reliability diagrams of predicted probabilities, one per method.
"""


def activations(*args, **kwargs):
    from lamina.plots.gallery import activations as draw

    return draw(*args, **kwargs)


def history(*args, **kwargs):
    from lamina.plots.curves import history as draw

    return draw(*args, **kwargs)


def norms(*args, **kwargs):
    from lamina.plots.norm_cube import norms as draw

    return draw(*args, **kwargs)


def reliability(*args, **kwargs):
    from lamina.plots.reliability_diagram import reliability as draw

    return draw(*args, **kwargs)


__all__ = ["activations", "history", "norms", "reliability"]
