"""`lamina::convolution`: torch's convolution, with one CPU route of lamina's inside it.

oneDNN's convolution costs ~25 us per call before any arithmetic on a 2-core CPU, so torch sends
a single sample (batch 1, under 20480 input values) to its own im2col kernel whatever the work.
For a channels_last Conv1D sample (run as 2D with a height of 1) that is slower once the work is
large: FCN's 128 -> 256 channel, kernel-5 layer on 150 steps takes 277 us there and 177 us in
oneDNN. Measured on 1D shapes, oneDNN wins from about 6M multiply-adds and ties below; 2D kernels
are left to torch (a 7x7x256 3x3 sample ran 4x slower in oneDNN). Inference only: training
batches are larger, and torch already gives them to oneDNN.

The operator is registered as CompositeImplicitAutograd: its body is made of torch's own ops, so
autograd, vmap, torch.compile and export see those ops (torch's convolution wherever the oneDNN
call does not apply, which is everywhere but eager single-sample inference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lamina import _native
from lamina.kernels._ops import _LIBRARY, entry

ONEDNN_MIN_MULTIPLY_ADDS = 6_000_000

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def onednn_for_one_sample(x, kernel, groups, stride) -> bool:
    """Whether a convolution of one channels_last sample, shaped (1, C, 1, L) as a lifted Conv1D's,
    goes to oneDNN directly."""
    # The shapes and the size first: most calls (batches, small layers) stop there.
    return (x.dim() == 4 and x.shape[0] == 1 and x.shape[2] == 1 and kernel.shape[2] == 1
            and groups == 1 and x.shape[-1] // stride[-1] * kernel.numel() >= ONEDNN_MIN_MULTIPLY_ADDS
            and not torch.is_grad_enabled() and _native.eager(lowered_on=x.device.type)
            and _native.float32_cpu(x, kernel)
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and x.is_contiguous(memory_format=torch.channels_last))


def _convolution(x, kernel, bias, stride, padding, dilation, groups):
    if onednn_for_one_sample(x, kernel, groups, stride):
        # A channels_last layer's kernel is kept channels_last (layers/conv.py): no copy here.
        return torch.mkldnn_convolution(x, kernel.contiguous(memory_format=torch.channels_last), bias,
                                        padding, stride, dilation, groups)
    return _CONV[x.dim() - 2](x, kernel, bias, stride, padding, dilation, groups)


_LIBRARY.define("convolution(Tensor x, Tensor kernel, Tensor? bias, int[] stride, int[] padding, "
                "int[] dilation, int groups) -> Tensor")
_LIBRARY.impl("convolution", _convolution, "CompositeImplicitAutograd")
# A composite's kernel is what the dispatcher runs with or without a gradient to record.
_CONVOLUTION = entry(torch.ops.lamina.convolution.default, _convolution, autograd_kernel=_convolution)


def convolution(x, kernel, bias, stride, padding, dilation, groups=1):
    """torch's convolution of channels-first `x` (N, C, *spatial) with a torch-layout kernel;
    `padding` an int or one per spatial axis."""
    rank = x.dim() - 2
    if not isinstance(padding, (tuple, list)):
        padding = (padding,) * rank
    return _CONVOLUTION(x, kernel, bias, list(stride), list(padding), list(dilation), groups)
