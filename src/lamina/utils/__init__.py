"""Utilities with Keras' names: to_categorical, set_random_seed, timeseries_dataset_from_array,
pad_sequences, normalize, PyDataset, plot_model."""

from lamina.utils.data_utils import timeseries_dataset_from_array, to_categorical
from lamina.utils.model_visualization import model_to_dot, plot_model
from lamina.utils.naming import reset_names as clear_session
from lamina.utils.py_dataset import PyDataset, Sequence
from lamina.utils.random import set_random_seed
from lamina.utils.sequence_utils import normalize, pad_sequences
from lamina.utils.step_data import pack_x_y_sample_weight, unpack_x_y_sample_weight

__all__ = ["to_categorical", "set_random_seed", "timeseries_dataset_from_array", "clear_session",
           "pad_sequences", "normalize", "PyDataset", "Sequence", "plot_model", "model_to_dot",
           "pack_x_y_sample_weight", "unpack_x_y_sample_weight"]
