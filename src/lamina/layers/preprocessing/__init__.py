"""Keras' preprocessing layers for images: rescaling, resizing, cropping and random augmentation.
(Normalization, which learns its statistics with `adapt`, lives with the other norms.)"""

from lamina.layers.preprocessing.augmentation import RandomFlip, RandomRotation, RandomZoom
from lamina.layers.preprocessing.image import CenterCrop, Rescaling, Resizing

__all__ = ["Rescaling", "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom"]
