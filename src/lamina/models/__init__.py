"""Models: the functional graph, Sequential, the training loop and the summary."""

from lamina.models.model import Model
from lamina.models.sequential import Sequential
from lamina.models.training import MCResult

__all__ = ["Model", "Sequential", "MCResult"]
