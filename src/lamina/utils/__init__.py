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

# Keras also offers its serialization registry under keras.utils. These names come from
# lamina.saving on first use: importing it here would be circular (saving needs the layers,
# which need lamina.utils).
_SAVING_NAMES = ("register_keras_serializable", "custom_object_scope", "CustomObjectScope",
                 "serialize_keras_object", "deserialize_keras_object", "get_registered_name",
                 "get_registered_object", "get_custom_objects")
__all__ += list(_SAVING_NAMES)


def __getattr__(name):
    if name in _SAVING_NAMES:
        from lamina import saving

        return getattr(saving, name)
    raise AttributeError(f"module 'lamina.utils' has no attribute '{name}'")
