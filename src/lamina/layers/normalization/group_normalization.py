"""GroupNormalization and InstanceNormalization: per-sample statistics over groups of channels."""

from __future__ import annotations

from lamina.kernels.normalization import normalize
from lamina.layers.base import InputSpec
from lamina.layers.normalization._base import AffineNormalization, known_size, resolve_axis
from lamina.layers.normalization._statistics import plan


class GroupNormalization(AffineNormalization):
    """Splits the channels into `groups` and normalizes each group of each sample with its own
    mean and variance (over the group's channels and every spatial axis), then scales by `gamma`
    and shifts by `beta` per channel (Keras 3 semantics).

    Like LayerNormalization it never looks across samples, so it works with batches of any size
    (Wu & He, 2018: it keeps accuracy where BatchNorm degrades at batch sizes of 2-8).
    `groups=1` gives a LayerNormalization over all non-batch axes; `groups=-1` (one channel per
    group) gives InstanceNormalization.

    Args:
        groups: number of channel groups (default 32), dividing the number of channels; -1 puts
            every channel in its own group.
        axis: the channels axis (channels_last: -1).
        epsilon: added to the variance (Keras: 1e-3; torch: 1e-5).
        center, scale: whether to learn the per-channel offset beta and scale gamma.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer: as Keras.

    Input shape: (batch, ..., channels), any rank >= 2. Output shape: the same.

    Example:
        >>> layer = GroupNormalization(groups=4)
        >>> layer(torch.randn(2, 32, 32, 16)).shape
        torch.Size([2, 32, 32, 16])
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer, beta_regularizer=beta_regularizer,
                         gamma_regularizer=gamma_regularizer, **kwargs)
        if not isinstance(groups, int) or isinstance(groups, bool) or (groups <= 0 and groups != -1):
            raise ValueError(
                f"{type(self).__name__}: `groups` must be a positive int, or -1 for one channel per group "
                f"(instance normalization). Received: groups={groups!r}"
            )
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"{type(self).__name__}: `axis` must be an int. Received: axis={axis!r}")
        self.groups = groups
        self.axis = axis

    def build(self, input_shape):
        self._channel_axis = resolve_axis(self, self.axis, len(input_shape))
        channels = known_size(self, input_shape, self._channel_axis)
        groups = channels if self.groups == -1 else self.groups
        if channels % groups:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the number of channels ({channels}) must be a "
                f"multiple of the number of groups. Received: groups={groups}"
            )
        self._resolved_groups = groups
        self.add_affine_weights((channels,))
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})

    def call(self, inputs):
        axis, groups = self._channel_axis, self._resolved_groups
        # The channel axis split in two, (groups, channels per group): statistics keep the batch
        # and the groups; gamma and beta span both halves.
        split = (*inputs.shape[:axis], groups, inputs.shape[axis] // groups, *inputs.shape[axis + 1:])
        p = plan(split, {0, axis}, {axis, axis + 1})
        gamma, beta = self.affine_views(p.param_shape)
        y, _, _ = normalize(inputs.reshape(p.view), p.reduce, gamma, beta, self.epsilon)
        return y.reshape(inputs.shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis}


class InstanceNormalization(GroupNormalization):
    """Normalizes each channel of each sample over its spatial axes (Ulyanov et al., 2017), then
    scales by `gamma` and shifts by `beta` per channel: GroupNormalization with one channel per
    group. Keras has no such layer; torch's `InstanceNorm1d/2d` computes the same thing, without
    an affine transform by default.

    It removes each sample's per-channel contrast and brightness: "style" in image generation,
    which is why style transfer uses it, and why it can erase information a classifier or a
    generator's diversity needs. On a (batch, channels) input every channel is a single value and
    the output is `beta`.

    Args:
        axis: the channels axis (channels_last: -1).
        epsilon: added to the variance (1e-3, the Keras family's default; torch: 1e-5).
        center, scale: whether to learn the per-channel offset beta and scale gamma.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer: as Keras.

    Input shape: (batch, ..., channels). Output shape: the same.

    Example:
        >>> layer = InstanceNormalization()
        >>> layer(torch.randn(4, 64, 64, 3)).shape
        torch.Size([4, 64, 64, 3])
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(groups=-1, axis=axis, epsilon=epsilon, center=center, scale=scale,
                         beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                         beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        return config
