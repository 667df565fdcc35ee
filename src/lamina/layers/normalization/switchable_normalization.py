"""SwitchableNormalization: a learned mixture of instance, layer and batch statistics."""

from __future__ import annotations

import torch

from lamina import initializers
from lamina.layers.base import InputSpec, state_updates_enabled
from lamina.layers.normalization import _kernels
from lamina.layers.normalization._base import AffineNormalization, check_momentum, known_size
from lamina.layers.normalization._statistics import normalize, pooled, update_moving

_BRANCHES = ("instance", "layer", "batch")


class _Mixture:
    """SN's mixed mean and variance, (batch, 1, channels) each, from the instance statistics:
    the layer statistics (and, in training, the batch ones) are pooled from them exactly, then
    the branches are mixed with softmax weights. `backward` is its gradient, written out: the
    mixture is a dozen small tensors, and recording it for autograd costs more than the norm's
    full-size work on a typical feature map."""

    def __init__(self, using_bn: bool, batch_statistics: bool):
        self.using_bn, self.batch_statistics = using_bn, batch_statistics

    def __call__(self, mean_in, var_in, mean_logits, variance_logits, *moving):
        """(mixed mean, mixed variance, what `backward` needs)."""
        branches = [(mean_in, var_in), pooled(mean_in, var_in, [2])]
        if self.using_bn:
            branches.append(pooled(mean_in, var_in, [0]) if self.batch_statistics else tuple(moving))
        means, variances = zip(*branches)
        # The batch branch's statistics, for the layer's moving averages (not computed twice).
        self.batch_moments = branches[2] if self.using_bn and self.batch_statistics else None
        mean_weights, variance_weights = torch.softmax(mean_logits, 0), torch.softmax(variance_logits, 0)
        mixed_mean = _weighted_sum(mean_weights.unbind(), means)
        mixed_var = _weighted_sum(variance_weights.unbind(), variances)
        return mixed_mean, mixed_var, (means, variances, mean_weights, variance_weights)

    def backward(self, saved, mean_in, var_in, inputs, grad_mean, grad_var):
        """Gradients with respect to mean_in, var_in and each of `inputs`."""
        means, variances, mean_weights, variance_weights = saved
        mean_share, variance_share = mean_weights.unbind(), variance_weights.unbind()
        grad_mean_in, grad_var_in = mean_share[0] * grad_mean, variance_share[0] * grad_var
        # A pooled branch over `dim` (n values): d mean / d mean_in = 1/n, d var / d var_in = 1/n,
        # d var / d mean_in = 2 (mean_in - pooled mean) / n.
        pooled_branches = [(1, 2)] + ([(2, 0)] if self.using_bn and self.batch_statistics else [])
        for branch, dim in pooled_branches:
            share_mean = grad_mean.sum(dim, keepdim=True) * (mean_share[branch] / mean_in.shape[dim])
            share_var = grad_var.sum(dim, keepdim=True) * (variance_share[branch] / mean_in.shape[dim])
            grad_mean_in = grad_mean_in + share_mean + 2 * share_var * (mean_in - means[branch])
            grad_var_in = grad_var_in + share_var
        return (grad_mean_in, grad_var_in, _softmax_grad(mean_weights, grad_mean, means),
                _softmax_grad(variance_weights, grad_var, variances), *(None for _ in inputs[2:]))


def _weighted_sum(weights, statistics):
    total = weights[0] * statistics[0]
    for w, s in zip(weights[1:], statistics[1:]):
        total = total + w * s
    return total


def _softmax_grad(weights, grad, statistics):
    """Gradient of the logits of sum_k softmax(logits)_k * statistics_k."""
    per_branch = torch.stack([(grad * s).sum() for s in statistics])
    return weights * (per_branch - (weights * per_branch).sum())


def _fast_route(x, gamma, beta) -> bool:
    """(batch, positions, channels) float32 on the CPU kernels, eagerly: `_SwitchableRows`."""
    return x.shape[1] > 0 and _kernels.usable(x, *(t for t in (gamma, beta) if t is not None))


class _SwitchableRows(torch.autograd.Function):
    """SN of a (batch, positions, channels) float32 CPU tensor in one autograd function: the
    kernels' three full-size passes each way, as BatchNorm has, and between them the mixture and
    its gradient on the (batch, channels) instance statistics as two compiled calls (as eager ops
    they are some fifty small tensors, which cost more than the full-size work on typical
    feature maps).

    The branches of the means (and likewise of the variances) are instance (n, c), layer (pooled
    over the channels, per sample) and, with `using_bn`, batch (pooled over the batch, or the
    given moving statistics, per channel); mixed = sum_k softmax(logits)_k * branch_k. Returns y
    and the batch branch's pooled statistics (empty when it does not pool) for the moving
    averages.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, mean_logits, var_logits, epsilon, using_bn, moving_mean, moving_var):
        n, length, channels = x.shape
        mean_in, var_in = _kernels.moments(x, n, length, channels)
        batch_pooled = using_bn and moving_mean is None
        moving = (moving_mean, moving_var) if using_bn and not batch_pooled else None
        wm, wv, mean_mix, inv_std, scale, shift, *branch_stats = _kernels.sn_mix_forward(
            mean_in, var_in, mean_logits.detach().contiguous(), var_logits.detach().contiguous(), moving,
            gamma, beta, epsilon, batch_pooled)
        y = _kernels.affine(x, n, length, channels, mean_mix, scale, shift)
        ctx.save_for_backward(x, mean_in, var_in, mean_mix, inv_std, scale, wm, wv, *branch_stats)
        ctx.options = (batch_pooled, gamma is not None, beta is not None)
        mean_bn, var_bn = branch_stats[2:] if batch_pooled else (mean_in[:0], var_in[:0])
        ctx.mark_non_differentiable(mean_bn, var_bn)
        return y, mean_bn, var_bn

    @staticmethod
    def backward(ctx, dy, _grad_batch_mean, _grad_batch_var):
        x, mean_in, var_in, mean_mix, inv_std, scale, wm, wv, *branch_stats = ctx.saved_tensors
        batch_pooled, has_gamma, has_beta = ctx.options
        n, length, channels = x.shape
        dy = dy.contiguous()
        sum_dy, sum_dy_centered = _kernels.sums(dy, x, n, length, channels, mean_mix)
        grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, slope, offset = _kernels.sn_mix_backward(
            sum_dy, sum_dy_centered, length, batch_pooled, wm, wv, mean_in, var_in, inv_std, scale,
            *branch_stats, has_gamma, has_beta)
        dx = _kernels.combine(dy, x, n, length, channels, mean_in, scale, slope, offset)
        return dx, grad_gamma, grad_beta, grad_mean_logits, grad_var_logits, None, None, None, None


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
        channels = inputs.shape[-1]
        x = inputs.reshape(inputs.shape[0], -1, channels)
        batch_statistics = self.using_bn and training and self.trainable
        if _fast_route(x, self.gamma, self.beta):
            moving = ((self.moving_mean, self.moving_variance) if self.using_bn and not batch_statistics
                      else (None, None))
            y, mean_bn, var_bn = _SwitchableRows.apply(x, self.gamma, self.beta, self.mean_weights,
                                                       self.variance_weights, float(self.epsilon),
                                                       self.using_bn, *moving)
            if batch_statistics and state_updates_enabled():
                self._track(mean_bn, var_bn)
            return y.reshape(inputs.shape)
        moving = ((self.moving_mean.reshape(1, 1, -1), self.moving_variance.reshape(1, 1, -1))
                  if self.using_bn and not batch_statistics else ())
        gamma, beta = self.affine_views((1, 1, channels))
        mixture = _Mixture(self.using_bn, batch_statistics)
        y, mean_in, var_in = normalize(x, (1,), gamma, beta, self.epsilon, derive=mixture,
                                       derive_inputs=(self.mean_weights, self.variance_weights, *moving))
        if batch_statistics and state_updates_enabled():
            # The traced path (graph capture) records its own mixture, not this object's.
            moments = getattr(mixture, "batch_moments", None) or pooled(mean_in, var_in, [0])
            self._track(*(m.detach() for m in moments))
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
