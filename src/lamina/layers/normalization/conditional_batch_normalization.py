"""ConditionalBatchNormalization: BatchNorm whose scale and offset depend on a class or a vector."""

from __future__ import annotations

import torch

from lamina import initializers
from lamina.layers.core import Dense
from lamina.layers.normalization._base import known_size
from lamina.layers.normalization.batch_normalization import BatchNormalization


class ConditionalBatchNormalization(BatchNormalization):
    """BatchNormalization without its own affine transform, followed by a scale `gamma` and an
    offset `beta` chosen by a condition (de Vries et al., 2017; Miyato & Koyama, 2018): a row of a
    per-class table for class ids, or a projection of a condition vector.

    Called as `layer([x, condition])`:

    - with `num_classes`, `condition` holds integer class ids of shape (batch,) or (batch, 1);
      gamma and beta are (num_classes, channels) tables, gamma initialised to 1 and beta to 0,
      so training starts from plain BatchNorm (class-conditional GANs, conditional generators);
    - with `num_classes=None`, `condition` is a float vector (batch, features) and gamma and beta
      are `Dense(channels)` projections of it (FiLM-style conditioning on continuous inputs),
      with a zero kernel and biases 1 and 0 by default, so they too start as plain BatchNorm.

    Statistics, moving averages, `trainable=False` and `synchronized` behave exactly as in
    BatchNormalization.

    Args:
        num_classes: number of classes for id conditions; None for vector conditions.
        momentum, epsilon, moving_mean_initializer, moving_variance_initializer, synchronized:
            as BatchNormalization.
        gamma_initializer, beta_initializer: initializers of the class tables, or of the
            projections' biases for vector conditions.
        kernel_initializer: initializer of the projections' kernels (vector conditions only).
        gamma_regularizer, beta_regularizer: regularizers of the class tables or projection kernels.

    Input shape: [(batch, ..., channels), (batch,) ids or (batch, features) vectors].
    Output shape: the shape of the first input.

    Example:
        >>> layer = ConditionalBatchNormalization(num_classes=10)
        >>> x, labels = torch.randn(8, 16, 16, 32), torch.randint(0, 10, (8,))
        >>> layer([x, labels], training=True).shape
        torch.Size([8, 16, 16, 32])
    """

    supports_masking = False

    def __init__(self, num_classes=None, momentum=0.99, epsilon=1e-3, gamma_initializer="ones",
                 beta_initializer="zeros", kernel_initializer="zeros", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", gamma_regularizer=None, beta_regularizer=None,
                 synchronized=False, **kwargs):
        super().__init__(axis=-1, momentum=momentum, epsilon=epsilon, center=False, scale=False,
                         beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                         moving_mean_initializer=moving_mean_initializer,
                         moving_variance_initializer=moving_variance_initializer,
                         beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                         synchronized=synchronized, **kwargs)
        if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                        or num_classes < 1):
            raise ValueError(
                "ConditionalBatchNormalization: `num_classes` must be a positive int (class-id "
                f"conditions) or None (vector conditions). Received: num_classes={num_classes!r}"
            )
        self.num_classes = num_classes
        self.kernel_initializer = initializers.get(kernel_initializer)

    def build(self, input_shape):
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                and all(isinstance(s, (list, tuple)) for s in input_shape)):
            raise ValueError(
                f"ConditionalBatchNormalization '{self.name}' is called on [inputs, condition]. "
                f"Received input shape {input_shape}."
            )
        x_shape, condition_shape = input_shape
        super().build(x_shape)
        channels = known_size(self, x_shape, -1)
        if self.num_classes is not None:
            self.add_weight("gamma", (self.num_classes, channels), self.gamma_initializer,
                            regularizer=self.gamma_regularizer)
            self.add_weight("beta", (self.num_classes, channels), self.beta_initializer,
                            regularizer=self.beta_regularizer)
        else:
            self.gamma_projection = self._projection("gamma", channels, condition_shape)
            self.beta_projection = self._projection("beta", channels, condition_shape)
        self.input_spec = [self.input_spec, None]

    def _projection(self, kind, channels, condition_shape):
        """Dense(channels) from the condition vector to gamma or beta; its bias starts at the
        table initializer's value, so the layer starts as plain BatchNorm."""
        dense = Dense(channels, kernel_initializer=self.kernel_initializer,
                      bias_initializer=getattr(self, f"{kind}_initializer"),
                      kernel_regularizer=getattr(self, f"{kind}_regularizer"), name=f"{self.name}_{kind}")
        dense.build_from_shape(condition_shape)
        return dense

    def call(self, inputs, training=None):
        x, condition = inputs
        gamma, beta = self._conditional_affine(x, condition)
        return self._batch_normalize(x, training, None, {0, x.ndim - 1},
                                     lambda shape: (gamma.reshape(shape), beta.reshape(shape)))

    def _conditional_affine(self, x, condition):
        """Per-sample (batch, channels) gamma and beta."""
        if self.num_classes is None:
            if not condition.is_floating_point() or condition.ndim != 2 or condition.shape[0] != x.shape[0]:
                raise ValueError(
                    f"ConditionalBatchNormalization '{self.name}' (num_classes=None) expects a float "
                    f"condition of shape (batch, features) with batch={x.shape[0]}. Received "
                    f"{condition.dtype} of shape {tuple(condition.shape)}; pass num_classes for class ids."
                )
            return self.gamma_projection(condition), self.beta_projection(condition)
        ids = condition.reshape(-1) if condition.ndim == 2 and condition.shape[1] == 1 else condition
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or ids.ndim != 1:
            raise ValueError(
                f"ConditionalBatchNormalization '{self.name}' expects integer class ids of shape (batch,) "
                f"or (batch, 1). Received {condition.dtype} of shape {tuple(condition.shape)}."
            )
        if ids.shape[0] != x.shape[0]:
            raise ValueError(
                f"ConditionalBatchNormalization '{self.name}': {ids.shape[0]} class ids for a batch of "
                f"{x.shape[0]} inputs."
            )
        # A captured graph (ONNX export) cannot branch on values: the check is left to eager calls.
        if ids.numel() and not torch.compiler.is_compiling() and (
                int(ids.min()) < 0 or int(ids.max()) >= self.num_classes):
            raise ValueError(
                f"ConditionalBatchNormalization '{self.name}': class ids must lie in "
                f"[0, {self.num_classes}). Received ids from {int(ids.min())} to {int(ids.max())}."
            )
        return self.gamma[ids], self.beta[ids]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        for inherited in ("axis", "center", "scale"):
            del config[inherited]
        return {**config, "num_classes": self.num_classes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer)}
