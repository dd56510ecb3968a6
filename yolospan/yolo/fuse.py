"""Conv + BatchNorm folding for inference: the BatchNorm's affine transform moves into the conv."""

from __future__ import annotations

import torch
from torch import nn

from yolospan.yolo.blocks import Conv

__all__ = ["fold_batchnorm", "fuse_convs"]


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv (with bias, no gradients, as upstream) computing ``bn(conv(x))`` with ``bn``'s running stats."""
    assert bn.running_var is not None and bn.running_mean is not None
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        conv.groups,
        bias=True,
        device="meta",  # no wasted random init: both parameters are replaced below
    )
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    fused.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    fused.bias = nn.Parameter(bias, requires_grad=False)
    return fused


def fuse_convs(model: nn.Module) -> int:
    """Fold every `Conv`'s BatchNorm into its conv, in place; returns how many were folded."""
    folded = 0
    for module in model.modules():
        if isinstance(module, Conv) and module.bn is not None:
            module.conv = fold_batchnorm(module.conv, module.bn)
            module.bn = None
            folded += 1
    return folded
