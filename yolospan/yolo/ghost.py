"""GhostNet's cheap convolutions as YOLOv5's ``yolov5s-ghost`` config uses them.

A Ghost convolution computes half its output channels with an ordinary conv and derives the other
half from those with a 5×5 depthwise conv, roughly halving the cost. Attribute names follow
upstream so state dicts keep upstream's keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yolospan.yolo.blocks import C3, Conv

__all__ = ["C3Ghost", "DWConv", "GhostBottleneck", "GhostConv"]


class DWConv(Conv):
    """Depthwise conv: one group per shared channel (``gcd(in_ch, out_ch)`` groups)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, dilation: int = 1, act: bool = True
    ) -> None:
        super().__init__(
            in_ch, out_ch, kernel, stride, groups=math.gcd(in_ch, out_ch), dilation=dilation, act=act
        )


class GhostConv(nn.Module):
    """A conv to half of ``out_ch``, then a 5×5 depthwise conv of that half; both halves concatenated."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        half = out_ch // 2
        self.cv1 = Conv(in_ch, half, kernel, stride, None, groups, act=act)
        self.cv2 = Conv(half, half, 5, 1, None, half, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.cv1(x)
        return torch.cat((primary, self.cv2(primary)), 1)


class GhostBottleneck(nn.Module):
    """Ghost conv → (depthwise stride-2 conv) → linear Ghost conv, plus a shortcut branch."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        hidden = out_ch // 2
        self.conv = nn.Sequential(
            GhostConv(in_ch, hidden, 1, 1),
            DWConv(hidden, hidden, kernel, stride, act=False) if stride == 2 else nn.Identity(),
            GhostConv(hidden, out_ch, 1, 1, act=False),
        )
        self.shortcut: nn.Module = (
            nn.Sequential(
                DWConv(in_ch, in_ch, kernel, stride, act=False), Conv(in_ch, out_ch, 1, 1, act=False)
            )
            if stride == 2
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)  # type: ignore[no-any-return]


class C3Ghost(C3):
    """`C3` with `GhostBottleneck` s inside (``shortcut`` and ``groups`` unused, as upstream)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        repeats: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__(in_ch, out_ch, repeats, shortcut, groups, expansion)
        hidden = int(out_ch * expansion)
        self.m = nn.Sequential(*(GhostBottleneck(hidden, hidden) for _ in range(repeats)))
