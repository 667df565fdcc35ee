"""BatchNormalization: per-channel statistics over the batch and every other axis."""

from __future__ import annotations

import torch

from lamina import initializers
from lamina.kernels.normalization import normalize, normalize_with
from lamina.layers.base import InputSpec, state_updates_enabled
from lamina.layers.normalization._base import (
    AffineNormalization,
    check_momentum,
    known_size,
    resolve_axis,
)
from lamina.layers.normalization._statistics import (
    masked_moments,
    plan,
    process_group,
    shaped,
    table_shape,
    update_moving,
)


class BatchNormalization(AffineNormalization):
    """Normalizes each channel with the batch's mean and variance while training, and with their
    moving averages at inference, then scales by `gamma` and shifts by `beta` (Keras 3 semantics).

    In training mode (`fit`, or `training=True`) the output is
    `(x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta`, with the biased variance over every
    axis but `axis`, and the moving statistics follow
    `moving = momentum * moving + (1 - momentum) * batch`. In inference mode (`predict`,
    `evaluate`, a layer built and not put in training) the moving statistics are used.
    `predict` and `evaluate` never change the moving statistics, even with `training=True`.

    As in Keras 3, `layer.trainable = False` freezes the layer *and* runs it in inference mode
    (moving statistics, no updates), which is what fine-tuning a pretrained model wants.

    A batch of one in training mode is allowed, as in Keras (torch refuses it): every statistic
    is then taken over the other axes alone; for a (1, channels) input the variance is 0 and the
    output is `beta`.

    Args:
        axis: the channels axis (channels_last: -1).
        momentum: weight of the old moving value in each update (Keras convention, 0.99; torch's
            `momentum=0.1` corresponds to 0.9 here).
        epsilon: added to the variance before the square root (Keras: 1e-3; torch: 1e-5).
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned scale `gamma`.
        beta_initializer, gamma_initializer: initializers of the offset and scale.
        moving_mean_initializer, moving_variance_initializer: initial moving statistics.
        beta_regularizer, gamma_regularizer: optional regularizers.
        synchronized: when torch.distributed is initialized with several processes, compute the
            statistics over the whole global batch (all processes' inputs together), gradients
            included. On a single process it changes nothing.

    Call arguments:
        inputs: a tensor of any rank >= 2, channels on `axis`.
        training: batch statistics (True) or moving statistics (False); defaults to the layer's
            mode.
        mask: optional boolean tensor of the input's shape without its last axis (a timestep
            mask, as Keras): masked-out positions are left out of the batch statistics.

    Input shape: any, e.g. (batch, features), (batch, steps, channels) or
    (batch, height, width, channels). Output shape: the same.

    Weights (Keras order): gamma, beta (trainable, when `scale` / `center`), moving_mean,
    moving_variance (non-trainable buffers), each of shape (channels,).

    Example:
        >>> layer = BatchNormalization()
        >>> y = layer(torch.randn(16, 150, 8), training=True)   # normalized per channel
        >>> y.shape
        torch.Size([16, 150, 8])
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 synchronized=False, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer, beta_regularizer=beta_regularizer,
                         gamma_regularizer=gamma_regularizer, **kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"BatchNormalization: `axis` must be an int. Received: axis={axis!r}")
        self.axis = axis
        self.momentum = check_momentum("BatchNormalization", momentum)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.synchronized = bool(synchronized)

    def build(self, input_shape):
        rank = len(input_shape)
        self._channel_axis = resolve_axis(self, self.axis, rank)
        channels = known_size(self, input_shape, self._channel_axis)
        self.add_affine_weights((channels,))
        self.add_weight("moving_mean", (channels,), self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", (channels,), self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: channels})

    def call(self, inputs, training=None, mask=None, _relu=False):
        # _relu (set by a Sequential for a BatchNormalization followed by Activation("relu")):
        # return max(output, 0), fused into the normalization's own passes where it can be.
        return self._batch_normalize(inputs, training, mask, {self._channel_axis}, self.affine_views,
                                     relu=_relu)

    def _batch_normalize(self, inputs, training, mask, param_axes, affine, relu=False):
        """Normalize with batch or moving statistics per channel, then apply `affine(shape)`'s
        (gamma, beta), shaped to broadcast, whose values vary along `param_axes` (and a ReLU
        with `relu`)."""
        if not (training and self.trainable):
            # Moving statistics, and every table shaped to broadcast against the input as it is
            # (a channels_last input's tables stay the (channels,) vectors they are).
            stat_shape = table_shape(inputs.shape, {self._channel_axis})
            gamma, beta = affine(table_shape(inputs.shape, param_axes))
            y = normalize_with(inputs, shaped(self.moving_mean, stat_shape),
                               shaped(self.moving_variance, stat_shape), gamma, beta, self.epsilon)
            return torch.relu(y) if relu else y
        p = plan(inputs.shape, {self._channel_axis}, param_axes)
        gamma, beta = affine(p.param_shape)
        x = inputs.reshape(p.view)
        if mask is None:
            y, mean, var = normalize(x, p.reduce, gamma, beta, self.epsilon, process_group(self.synchronized),
                                     relu=relu)
            y = y.reshape(inputs.shape)
        else:
            y, mean, var = self._normalize_masked(inputs, mask, param_axes, affine)
            y = torch.relu(y) if relu else y
        if state_updates_enabled():
            update_moving([self.moving_mean, self.moving_variance], [mean, var], self.momentum)
        return y

    def _normalize_masked(self, inputs, mask, param_axes, affine):
        if mask.ndim != inputs.ndim - 1:
            raise ValueError(
                f"BatchNormalization '{self.name}': the mask must have one dimension less than the "
                f"inputs. Received: mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
            )
        dims = [d for d in range(inputs.ndim) if d != self._channel_axis]
        mean, var = masked_moments(inputs, dims, mask.unsqueeze(-1))
        gamma, beta = affine([size if d in param_axes else 1 for d, size in enumerate(inputs.shape)])
        return normalize_with(inputs, mean, var, gamma, beta, self.epsilon), mean, var

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "momentum": self.momentum,
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "synchronized": self.synchronized,
        }
