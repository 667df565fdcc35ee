"""Models: the functional graph, Sequential, the training loop and the summary."""

from lamina.models.ensemble import Ensemble
from lamina.models.model import Model
from lamina.models.sequential import Sequential
from lamina.models.training import MCResult
from lamina.saving import clone_model, load_model, model_from_json, save_model

__all__ = ["Model", "Sequential", "Ensemble", "MCResult", "load_model", "save_model", "clone_model",
           "model_from_json"]
