"""What every normalization layer with a learned scale (gamma) and offset (beta) shares."""

from __future__ import annotations

from lamina import initializers, regularizers
from lamina.layers.base import Layer
from lamina.layers.normalization._statistics import shaped


def check_epsilon(layer_name: str, epsilon) -> float:
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon <= 0:
        raise ValueError(f"{layer_name}: `epsilon` must be a positive number. Received: epsilon={epsilon!r}")
    return float(epsilon)


def check_momentum(layer_name: str, momentum) -> float:
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"{layer_name}: `momentum` must be a number in [0, 1] (Keras' convention: moving = "
            f"momentum * moving + (1 - momentum) * batch). Received: momentum={momentum!r}"
        )
    return float(momentum)


def resolve_axis(layer: Layer, axis: int, rank: int) -> int:
    """`axis` as a non-negative index into an input of `rank`, or an error naming the layer."""
    if not -rank <= axis < rank:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': axis {axis} is out of bounds for an input of rank "
            f"{rank}. Received: axis={axis}"
        )
    return axis % rank


def known_size(layer: Layer, input_shape, axis: int) -> int:
    size = input_shape[axis]
    if size is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': axis {axis} of its input must have a known size to "
            f"create its weights. Received input shape {tuple(input_shape)}."
        )
    return size


class AffineNormalization(Layer):
    """Base of the norms with `epsilon`, `center` (learned beta) and `scale` (learned gamma).

    Output shape equals input shape; masks pass through.
    """

    supports_masking = True

    def __init__(self, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_epsilon(type(self).__name__, epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def add_affine_weights(self, shape) -> None:
        """gamma then beta, in Keras' order, each of Keras shape `shape`."""
        if self.scale:
            self.add_weight("gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer)
        else:
            self.register_parameter("gamma", None)
        if self.center:
            self.add_weight("beta", shape, self.beta_initializer, regularizer=self.beta_regularizer)
        else:
            self.register_parameter("beta", None)

    def affine_views(self, shape):
        """gamma and beta of `shape`, to broadcast in a plan's view or against the input (None
        where absent)."""
        params = self._parameters  # not the attributes: Module.__getattr__ costs per lookup
        return shaped(params["gamma"], shape), shaped(params["beta"], shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(), "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
        }
