"""LayerNormalization: statistics of each sample over the normalized axes."""

from __future__ import annotations

from lamina.kernels.normalization import normalize
from lamina.layers.base import InputSpec
from lamina.layers.normalization._base import AffineNormalization, known_size, resolve_axis
from lamina.layers.normalization._statistics import plan


class LayerNormalization(AffineNormalization):
    """Normalizes each sample over `axis` (by default the features of each position) with its own
    mean and variance, then scales by `gamma` and shifts by `beta` (Keras 3 semantics).

    The statistics never involve other samples, so the output does not depend on the batch: the
    same in training and inference, for a batch of one or of a thousand. That is why transformers
    and recurrent networks use it where BatchNormalization's batch statistics would be unstable.

    Args:
        axis: the axis or list of axes to normalize over; gamma and beta span them. -1 (Keras'
            default) normalizes the channels of each position separately; [1, 2, 3] on an image
            normalizes each whole sample (the "LN" of the normalization cube diagram).
        epsilon: added to the variance (Keras: 1e-3; torch: 1e-5).
        center, scale: whether to learn the offset beta and the scale gamma.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer: as Keras.

    Input shape: any. Output shape: the same.

    Example:
        >>> layer = LayerNormalization()
        >>> layer(torch.randn(2, 10, 16)).shape    # each of the 20 positions normalized
        torch.Size([2, 10, 16])
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer, beta_regularizer=beta_regularizer,
                         gamma_regularizer=gamma_regularizer, **kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            raise TypeError(
                "LayerNormalization: `axis` must be an int or a non-empty list of ints. "
                f"Received: axis={axis!r}"
            )
        self.axis = axis

    def _normalized_axes(self, rank):
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        return sorted({resolve_axis(self, a, rank) for a in axes})

    def build(self, input_shape):
        axes = self._normalized_axes(len(input_shape))
        self.add_affine_weights(tuple(known_size(self, input_shape, a) for a in axes))
        given = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        self.input_spec = InputSpec(min_ndim=max(a + 1 if a >= 0 else -a for a in given),
                                    axes={a: input_shape[a] for a in given})

    def call(self, inputs):
        axes = self._normalized_axes(inputs.ndim)
        normalized = set(axes)
        p = plan(inputs.shape, set(range(inputs.ndim)) - normalized, normalized)
        gamma, beta = self.affine_views(p.param_shape)
        y, _, _ = normalize(inputs.reshape(p.view), p.reduce, gamma, beta, self.epsilon)
        return y.reshape(inputs.shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
