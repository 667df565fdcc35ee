"""SwitchableNormalization: a learned mixture of instance, layer and batch statistics."""

from __future__ import annotations

import torch

from lamina import initializers
from lamina.kernels.normalization import switchable_normalize
from lamina.layers.base import InputSpec, state_updates_enabled
from lamina.layers.normalization._base import AffineNormalization, check_momentum, known_size
from lamina.layers.normalization._statistics import update_moving

_BRANCHES = ("instance", "layer", "batch")


class SwitchableNormalization(AffineNormalization):
    """Normalizes with a learned, softmax-weighted mixture of InstanceNorm, LayerNorm and
    BatchNorm statistics (Luo et al., 2018), then scales by `gamma` and shifts by `beta`.

    The instance statistics (per sample and channel, over the spatial axes) are computed once;
    the layer statistics (per sample) and batch statistics (per channel) are pooled from them
    exactly. The means and the variances have separate mixture weights, initialised equal, so the
    layer starts as the average of the three norms and learns which suits each depth of the
    network. Only the batch branch keeps moving statistics, and only it uses them at inference;
    the instance and layer branches always use the current sample.

    Unlike the reference implementation, variances are biased (divided by the count), so a
    single spatial element (a (batch, channels) input, or a 1x1 feature map) gives variance 0
    rather than NaN.

    Args:
        momentum: moving average momentum of the batch branch (Keras convention; the paper uses
            0.997).
        epsilon: added to the mixed variance (1e-3, the Keras family's default).
        center, scale: whether to learn the per-channel offset beta and scale gamma.
        using_moving_average: True keeps exponential moving averages of the batch statistics;
            False keeps their plain average over every training batch seen (for a final pass
            over the training data before inference, as the paper's "batch average").
        using_bn: False leaves the batch branch out (instance and layer statistics only), for
            batches too small or too varied for batch statistics.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer: as Keras.
        moving_mean_initializer, moving_variance_initializer: initial moving statistics.

    Input shape: (batch, ..., channels), channels last, any rank >= 2. Output shape: the same.

    Weights (in order): gamma, beta, mean_weights and variance_weights (the mixture logits, one
    per branch), then moving_mean, moving_variance (and moving_count when
    `using_moving_average=False`) for the batch branch.

    Example:
        >>> layer = SwitchableNormalization()
        >>> y = layer(torch.randn(8, 32, 32, 16), training=True)
        >>> layer.mixture()["mean"]
        {'instance': 0.333..., 'layer': 0.333..., 'batch': 0.333...}
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, using_moving_average=True,
                 using_bn=True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer, beta_regularizer=beta_regularizer,
                         gamma_regularizer=gamma_regularizer, **kwargs)
        self.momentum = check_momentum("SwitchableNormalization", momentum)
        self.using_moving_average = bool(using_moving_average)
        self.using_bn = bool(using_bn)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    @property
    def branches(self) -> tuple:
        return _BRANCHES if self.using_bn else _BRANCHES[:2]

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"SwitchableNormalization '{self.name}' needs inputs of rank >= 2 (batch, ..., channels). "
                f"Received input shape {tuple(input_shape)}."
            )
        channels = known_size(self, input_shape, -1)
        self.add_affine_weights((channels,))
        self.add_weight("mean_weights", (len(self.branches),), "ones")
        self.add_weight("variance_weights", (len(self.branches),), "ones")
        if self.using_bn:
            self.add_weight("moving_mean", (channels,), self.moving_mean_initializer, trainable=False)
            self.add_weight("moving_variance", (channels,), self.moving_variance_initializer, trainable=False)
            if not self.using_moving_average:
                self.add_weight("moving_count", (), "zeros", trainable=False)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: channels})

    def call(self, inputs, training=None):
        x = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
        batch_statistics = self.using_bn and training and self.trainable
        moving = ((self.moving_mean, self.moving_variance) if self.using_bn and not batch_statistics
                  else (None, None))
        y, mean_bn, var_bn = switchable_normalize(x, self.gamma, self.beta, self.mean_weights,
                                                  self.variance_weights, *moving, self.epsilon, self.using_bn)
        if batch_statistics and state_updates_enabled():
            self._track(mean_bn.detach(), var_bn.detach())
        return y.reshape(inputs.shape)

    def _track(self, mean_bn, var_bn):
        if self.using_moving_average:
            update_moving([self.moving_mean, self.moving_variance], [mean_bn, var_bn], self.momentum)
            return
        with torch.no_grad():
            self.moving_count.add_(1)
            share = 1.0 / self.moving_count
            self.moving_mean.lerp_(mean_bn.reshape(-1), share)
            self.moving_variance.lerp_(var_bn.reshape(-1), share)

    def mixture(self) -> dict:
        """The learned mix: {"mean": {branch: weight}, "variance": {branch: weight}}, each summing
        to 1, with the branches "instance", "layer" and (with `using_bn`) "batch"."""
        if not self.built:
            raise ValueError(
                f"SwitchableNormalization '{self.name}' has no mixture yet: call it on an input first."
            )
        with torch.no_grad():
            return {kind: dict(zip(self.branches, torch.softmax(logits, 0).tolist()))
                    for kind, logits in (("mean", self.mean_weights), ("variance", self.variance_weights))}

    def get_config(self):
        return {
            **super().get_config(), "momentum": self.momentum,
            "using_moving_average": self.using_moving_average, "using_bn": self.using_bn,
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
        }
