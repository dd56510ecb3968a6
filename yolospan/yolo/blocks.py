"""YOLOv5's building blocks, with upstream's structure and attribute names.

Attribute names (``conv``, ``bn``, ``cv1``, ``m`` ...) follow upstream on purpose: state dicts keep
upstream's keys and the module tree, which the profile counts, has the same shape.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["C3", "SPP", "SPPF", "Bottleneck", "Concat", "Conv", "autopad"]


def autopad(kernel: int, padding: int | None = None, dilation: int = 1) -> int:
    """'Same' padding for odd kernels at stride 1, unless the config gives one."""
    if padding is not None:
        return padding
    effective = dilation * (kernel - 1) + 1 if dilation > 1 else kernel
    return effective // 2


class Conv(nn.Module):
    """Conv2d (no bias) → BatchNorm2d → activation; after `yolospan.yolo.fuse` the BatchNorm is folded away.

    ``act=True`` puts a SiLU here as a placeholder for the model's activation: the builder replaces
    every placeholder with one instance, the config's ``activation:`` or SiLU (see
    `yolospan.yolo.builder`). ``act=False`` is the identity.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch,
            out_ch,
            kernel,
            stride,
            autopad(kernel, padding, dilation),
            groups=groups,
            dilation=dilation,
            bias=False,
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_ch)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is None:
            return self.act(self.conv(x))  # type: ignore[no-any-return]
        return self.act(self.bn(self.conv(x)))  # type: ignore[no-any-return]


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 conv, with a residual connection when the shapes allow it."""

    def __init__(
        self, in_ch: int, out_ch: int, shortcut: bool = True, groups: int = 1, expansion: float = 0.5
    ) -> None:
        super().__init__()
        hidden = int(out_ch * expansion)
        self.cv1 = Conv(in_ch, hidden, 1, 1)
        self.cv2 = Conv(hidden, out_ch, 3, 1, groups=groups)
        self.add = shortcut and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y  # type: ignore[no-any-return]


class C3(nn.Module):
    """CSP block: ``repeats`` Bottlenecks on one half of the channels, concatenated with the other half."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        repeats: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden = int(out_ch * expansion)
        self.cv1 = Conv(in_ch, hidden, 1, 1)
        self.cv2 = Conv(in_ch, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, out_ch, 1)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, groups, expansion=1.0) for _ in range(repeats))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))  # type: ignore[no-any-return]


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools give the 5/9/13 receptive fields of SPP."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5) -> None:
        super().__init__()
        hidden = in_ch // 2
        self.cv1 = Conv(in_ch, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, out_ch, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=kernel, stride=1, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))  # type: ignore[no-any-return]


class SPP(nn.Module):
    """Spatial pyramid pooling (YOLOv3-SPP): parallel max-pools, concatenated with their input."""

    def __init__(self, in_ch: int, out_ch: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_ch // 2
        self.cv1 = Conv(in_ch, hidden, 1, 1)
        self.cv2 = Conv(hidden * (len(kernels) + 1), out_ch, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x, *(pool(x) for pool in self.m)], 1))  # type: ignore[no-any-return]


class Concat(nn.Module):
    """Concatenates the outputs of several layers (a ``from`` list) along ``dim``."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.d = dim

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)
