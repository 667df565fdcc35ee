"""Utilities with Keras' names: to_categorical, set_random_seed, timeseries_dataset_from_array."""

from lamina.utils.data_utils import timeseries_dataset_from_array, to_categorical
from lamina.utils.naming import reset_names as clear_session
from lamina.utils.random import set_random_seed
from lamina.utils.step_data import pack_x_y_sample_weight, unpack_x_y_sample_weight

__all__ = ["to_categorical", "set_random_seed", "timeseries_dataset_from_array", "clear_session",
           "pack_x_y_sample_weight", "unpack_x_y_sample_weight"]
