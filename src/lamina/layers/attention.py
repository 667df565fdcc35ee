"""MultiHeadAttention and Attention (Luong dot-product), as Keras 3's.

MultiHeadAttention keeps Keras' four projections as sublayers named "query", "key", "value" and
"attention_output", each with Keras' EinsumDense kernel shape (query: (features, heads, key_dim);
output: (heads, value_dim, features)), so `set_weights(keras_layer.get_weights())` carries over.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lamina import initializers, regularizers
from lamina.layers.base import Layer
from lamina.layers.conv import positive_int
from lamina.layers.dropout import Dropout

__all__ = ["MultiHeadAttention", "Attention"]


class _Projection(Layer):
    """Contracts the last `len(in_dims)` axes of its input with a kernel of shape
    (*in_dims, *out_dims) and adds a bias of shape out_dims: Keras' EinsumDense as
    MultiHeadAttention uses it."""

    def __init__(self, in_dims, out_dims, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer, bias_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.in_dims, self.out_dims = tuple(in_dims), tuple(out_dims)
        self.add_weight("kernel", (*self.in_dims, *self.out_dims), kernel_initializer,
                        regularizer=kernel_regularizer)
        if use_bias:
            self.add_weight("bias", self.out_dims, bias_initializer, regularizer=bias_regularizer)
        self.use_bias = use_bias
        self.built = True

    def call(self, inputs):
        out = torch.tensordot(inputs, self.kernel, dims=len(self.in_dims))
        return out + self.bias if self.use_bias else out


def _masked_softmax(scores, mask):
    """Keras' Softmax with a mask: masked scores become -1e9 before the softmax and the masked
    probabilities 0 after it (so a query with no visible key attends to nothing; Keras does this
    when it returns the scores or has dropout, and otherwise spreads such a query evenly)."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    probs = torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)
    return probs.masked_fill(~mask, 0.0)


def _heads_first(x, axes):
    """(B, d..., N, H) -> (B, other axes..., N, prod(attention axes), H), and the sizes of the
    attention axes."""
    others = [a for a in range(1, x.dim() - 2) if a not in axes]
    y = x.permute(0, *others, x.dim() - 2, *axes, x.dim() - 1)
    sizes = [x.shape[a] for a in axes]
    return y.reshape(*y.shape[:len(others) + 2], -1, x.shape[-1]), sizes


def _heads_back(context, like, axes):
    """The inverse of _heads_first for a context (B, other..., N, T, value_dim), the query
    `like` (B, d..., N, key_dim) giving the axis sizes."""
    others = [a for a in range(1, like.dim() - 2) if a not in axes]
    sizes = [like.shape[a] for a in axes]
    y = context.reshape(*context.shape[:-2], *sizes, context.shape[-1])
    order = [0, *others, like.dim() - 2, *axes, like.dim() - 1]
    return y.permute(*[order.index(i) for i in range(like.dim())])


class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al. 2017), with Keras 3's arguments and weights.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default: key_dim).
        dropout: dropout rate on the attention probabilities, in training only.
        use_bias: whether the projections have biases.
        output_shape: the size (int or tuple) of the output's last axes; default: the query's
            last axis.
        attention_axes: the axes attention runs over (default: every axis between the batch and
            the features).
        kernel_initializer, bias_initializer: Keras names or Initializer objects.
        kernel_regularizer, bias_regularizer: "l1", "l2" or Regularizer objects.
        seed: seed of the dropout.

    Call arguments:
        query: (B, T, dim). value: (B, S, dim). key: (B, S, dim), default `value`.
        query_mask, value_mask, key_mask: (B, T) / (B, S) booleans; by default the masks the
            inputs carry (from `Embedding(mask_zero=True)` or `Masking`).
        attention_mask: (B, T, S) booleans, True where a query may attend to a key.
        return_attention_scores: also return the attention probabilities (B, heads, T, S).
        training: dropout on or off (default: the layer's mode).
        use_causal_mask: forbid attention to later positions (decoders).

    Output shape: (B, T, dim) (or output_shape); the output carries the query's mask.

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
        >>> x = torch.ones(3, 5, 8)
        >>> out, scores = mha(x, x, return_attention_scores=True)
        >>> tuple(out.shape), tuple(scores.shape)
        ((3, 5, 8), (3, 2, 5, 5))
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        where = f"MultiHeadAttention '{self.name}'"
        for arg, value in (("activity_regularizer", activity_regularizer),
                           ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"{where}: `{arg}` is not supported by lamina. Received: {value!r}")
        self.num_heads = positive_int(self, num_heads, "num_heads")
        self.key_dim = positive_int(self, key_dim, "key_dim")
        self.value_dim = positive_int(self, key_dim if value_dim is None else value_dim, "value_dim")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{where}: `dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, int):
            output_shape = (output_shape,)
        self._output_shape = None if output_shape is None else tuple(output_shape)
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        self._attention_axes = None if attention_axes is None else tuple(attention_axes)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.seed = seed
        self._dropout_layer = Dropout(self.dropout, seed=seed, name=f"{self.name}_dropout")

    @property
    def is_dropout(self) -> bool:  # predict_mc switches the layer on, as a Dropout
        return self.dropout > 0

    @property
    def attention_axes(self):
        return self._attention_axes

    # ----------------------------------------------------------------- building
    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(
                f"MultiHeadAttention '{self.name}': all axes of `value` and `key` except the last "
                f"must be equal. Received: value_shape={value_shape}, key_shape={key_shape}"
            )
        rank = len(query_shape)
        axes = self._attention_axes or tuple(range(1, rank - 1))
        self._attention_axes = tuple(a if a >= 0 else rank - 1 + a for a in axes)
        if any(not 1 <= a < rank - 1 for a in self._attention_axes):
            raise ValueError(
                f"MultiHeadAttention '{self.name}': `attention_axes` must lie between the batch "
                f"axis and the feature axis of an input of rank {rank}. Received: {axes}"
            )
        heads = self.num_heads
        out_dims = self._output_shape or (query_shape[-1],)
        self.query_dense = self._projection("query", (query_shape[-1],), (heads, self.key_dim))
        self.key_dense = self._projection("key", (key_shape[-1],), (heads, self.key_dim))
        self.value_dense = self._projection("value", (value_shape[-1],), (heads, self.value_dim))
        self.output_dense = self._projection("attention_output", (heads, self.value_dim), out_dims)

    def _projection(self, name, in_dims, out_dims):
        return _Projection(in_dims, out_dims, self.use_bias, self.kernel_initializer,
                           self.bias_initializer, self.kernel_regularizer, self.bias_regularizer,
                           name=name, dtype=self.compute_dtype)

    # ----------------------------------------------------------------- running
    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
        key = value if key is None else key
        mask = self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                    use_causal_mask)
        q = self.query_dense(query) / math.sqrt(self.key_dim)
        k = self.key_dense(key)
        v = self.value_dense(value)
        context, scores = self._attend(q, k, v, mask, training, return_attention_scores)
        output = self.output_dense(context)
        if query_mask is not None:
            output._lamina_mask = query_mask
        return (output, scores) if return_attention_scores else output

    def _attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask,
                        use_causal_mask):
        """Keras' merged mask, (B, T, S) booleans (or None): the query's mask on T, the value's
        and key's on S, the causal triangle and the user's attention_mask, and-ed."""
        masks = []
        if query_mask is not None:
            masks.append(torch.as_tensor(query_mask, device=query.device).bool().unsqueeze(-1))
        for m in (value_mask, key_mask):
            if m is not None:
                masks.append(torch.as_tensor(m, device=query.device).bool().unsqueeze(-2))
        if use_causal_mask:
            t, s = query.shape[1], value.shape[1]
            masks.append(torch.ones(t, s, dtype=torch.bool, device=query.device).tril())
        if attention_mask is not None:
            masks.append(torch.as_tensor(attention_mask, device=query.device).bool())
        if not masks:
            return None
        merged = masks[0]
        for m in masks[1:]:
            merged = merged & m
        return merged

    def _attend(self, q, k, v, mask, training, return_scores):
        """Softmax attention over the attention axes, each head apart. q (B, ..., N, key_dim),
        already scaled; k, v (B, ..., N, dim). Returns the context (B, ..., N, value_dim) and
        the probabilities in Keras' layout (B, other axes..., N, query axes..., key axes...)."""
        axes = self._attention_axes
        q_flat, q_sizes = _heads_first(q, axes)
        k_flat, k_sizes = _heads_first(k, axes)
        v_flat, _ = _heads_first(v, axes)
        if mask is not None:
            # (B, other..., query axes..., key axes...) flattened like the scores, plus heads.
            full = (q.shape[0], *q_flat.shape[1:-3], *q_sizes, *k_sizes)
            mask = mask.expand(full).reshape(*full[:-2 * len(axes)], q_flat.shape[-2], -1)
            mask = mask.unsqueeze(-3)
        if not return_scores and not self.dropout:
            # Keras' own fast path (dot_product_attention): masked scores get -1e9 and nothing
            # more, so a query that sees no key attends to all of them evenly. q is scaled.
            bias = None if mask is None else torch.zeros(mask.shape, dtype=q.dtype,
                                                          device=q.device).masked_fill(~mask, -1e9)
            context = F.scaled_dot_product_attention(q_flat, k_flat, v_flat, attn_mask=bias,
                                                     scale=1.0)
            return _heads_back(context, q, axes), None
        probs = _masked_softmax(q_flat @ k_flat.transpose(-1, -2), mask)
        dropped = self._dropout_layer(probs, training=bool(training)) if self.dropout else probs
        context = _heads_back(dropped @ v_flat, q, axes)
        return context, probs.reshape(*probs.shape[:-2], *q_sizes, *k_sizes)

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {
            **super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
            "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
            "output_shape": self._output_shape, "attention_axes": self._attention_axes,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "seed": self.seed,
        }


class Attention(Layer):
    """Dot-product attention (Luong style), as Keras' `Attention`: `softmax(query · keyᵀ) · value`.

    Args:
        use_scale: learn a scalar that multiplies the scores (initialised to 1).
        score_mode: "dot" (query · key) or "concat" (sum of tanh(query + key), Bahdanau's form
            without projections).
        dropout: dropout rate on the attention probabilities, in training only.
        seed: seed of the dropout.

    Call arguments:
        inputs: [query (B, Tq, dim), value (B, Tv, dim)] or [query, value, key (B, Tv, dim)].
        mask: [query_mask (B, Tq), value_mask (B, Tv)]; by default the masks the inputs carry.
        return_attention_scores: also return the probabilities (B, Tq, Tv).
        training: dropout on or off. use_causal_mask: forbid attention to later positions.

    Output shape: (B, Tq, value dim); zero where the query is masked.

    Example:
        >>> q, v = torch.ones(2, 3, 4), torch.ones(2, 5, 4)
        >>> Attention()([q, v]).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                f"Attention '{self.name}': `score_mode` must be 'dot' or 'concat'. "
                f"Received: score_mode={score_mode!r}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"Attention '{self.name}': `dropout` must be in [0, 1). Received: {dropout!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        self._dropout_layer = Dropout(self.dropout, seed=seed, name=f"{self.name}_dropout")

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                f"Attention '{self.name}' takes a list [query, value] or [query, value, key]. "
                f"Received input shape {input_shape}."
            )
        if self.use_scale:
            self.add_weight("scale", (), "ones")
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), "ones")

    def call(self, inputs, mask=None, training=None, return_attention_scores=False,
             use_causal_mask=False):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) > 2 else value
        query_mask, value_mask = (list(mask) + [None, None])[:2] if mask is not None else (None, None)
        scale = self.scale if self.use_scale else None
        if self.score_mode == "dot":
            scores = query @ key.transpose(-1, -2)
            scores = scores if scale is None else scores * scale
        else:
            summed = query.unsqueeze(-2) + key.unsqueeze(-3)
            summed = summed if scale is None else summed * scale
            scores = self.concat_score_weight * torch.tanh(summed).sum(-1)
        visible = None if value_mask is None else value_mask.bool().unsqueeze(-2)
        if use_causal_mask:
            causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
            visible = causal if visible is None else visible & causal
        if visible is not None:
            scores = torch.where(visible, scores, scores - 1e9)  # Keras subtracts, not replaces
        probs = torch.softmax(scores, dim=-1)
        dropped = self._dropout_layer(probs, training=training) if training and self.dropout else probs
        output = dropped @ value
        if query_mask is not None:
            output = torch.where(query_mask.bool().unsqueeze(-1), output, 0.0)
        return (output, probs) if return_attention_scores else output

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}
