"""The detection head and the segmentation head with its prototype branch.

Anchors are stored in pixels as built and divided by the strides by the stride probe, so after
creation they are in grid units, as upstream keeps them. ``stride`` is a non-persistent buffer:
it follows ``.to()`` but stays out of the state dict, whose keys match upstream's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from yolospan.yolo.blocks import Conv

__all__ = ["Detect", "Proto", "Segment"]

Anchors = Sequence[Sequence[float]]


class Detect(nn.Module):
    """One 1×1 conv per level; in eval mode the maps are also decoded into boxes in input pixels.

    Training mode returns the per-level maps ``[bs, na, ny, nx, no]``; eval returns
    ``(predictions [bs, anchors, no], maps)``. ``no`` is 5 + nc (+ mask coefficients for `Segment`).
    """

    stride: torch.Tensor | None
    anchors: torch.Tensor

    def __init__(self, nc: int, anchors: Anchors, in_channels: Sequence[int], masks: int = 0) -> None:
        super().__init__()
        self.nc = nc
        self.masks = masks
        self.no = 5 + nc + masks
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.register_buffer("stride", None, persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in in_channels)
        self._grids: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * self.nl

    def forward(self, x: list[torch.Tensor]) -> Any:
        maps = []
        decoded = []
        for i in range(self.nl):
            y = self.m[i](x[i])
            bs, _, ny, nx = y.shape
            y = y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            maps.append(y)
            if not self.training:
                decoded.append(self._decode(i, y).view(bs, -1, self.no))
        return maps if self.training else (torch.cat(decoded, 1), maps)

    def _decode(self, i: int, y: torch.Tensor) -> torch.Tensor:
        """Boxes as (cx, cy, w, h) in input pixels, objectness and class scores through a sigmoid."""
        grid, anchor_grid = self._grid(i, y.shape[3], y.shape[2])
        stride = self.stride[i]  # type: ignore[index]
        if self.masks:
            xy, wh, conf, coefficients = torch.split(y, [2, 2, self.nc + 1, self.masks], 4)
            xy = (xy.sigmoid() * 2 + grid) * stride
            wh = (wh.sigmoid() * 2) ** 2 * anchor_grid
            return torch.cat((xy, wh, conf.sigmoid(), coefficients), 4)
        xy, wh, conf = torch.split(y.sigmoid(), [2, 2, self.nc + 1], 4)
        xy = (xy * 2 + grid) * stride
        wh = (wh * 2) ** 2 * anchor_grid
        return torch.cat((xy, wh, conf), 4)

    def _grid(self, i: int, nx: int, ny: int) -> tuple[torch.Tensor, torch.Tensor]:
        anchors = self.anchors[i]
        cached = self._grids[i]
        if cached is not None and _fits(cached[0], ny, nx, anchors):
            return cached
        shape = (1, self.na, ny, nx, 2)
        ys = torch.arange(ny, device=anchors.device, dtype=anchors.dtype)
        xs = torch.arange(nx, device=anchors.device, dtype=anchors.dtype)
        yv, xv = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5
        anchor_grid = (anchors * self.stride[i]).view(1, self.na, 1, 1, 2).expand(shape)  # type: ignore[index]
        self._grids[i] = grid, anchor_grid
        return grid, anchor_grid

    def reset_grids(self) -> None:
        """Forget the cached decoding grids (after the anchors or strides changed)."""
        self._grids = [None] * self.nl


def _fits(grid: torch.Tensor, ny: int, nx: int, anchors: torch.Tensor) -> bool:
    """A cached grid is reused only for the same map size, device and dtype."""
    return (
        grid.shape[2] == ny
        and grid.shape[3] == nx
        and grid.device == anchors.device
        and grid.dtype == anchors.dtype
    )


class Proto(nn.Module):
    """Mask prototypes at twice the P3 resolution: Conv 3×3 → nearest ×2 → Conv 3×3 → Conv 1×1."""

    def __init__(self, in_ch: int, protos: int = 256, masks: int = 32) -> None:
        super().__init__()
        self.cv1 = Conv(in_ch, protos, kernel=3)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.cv2 = Conv(protos, protos, kernel=3)
        self.cv3 = Conv(protos, masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))  # type: ignore[no-any-return]


class Segment(Detect):
    """Detect with ``masks`` extra coefficients per anchor, plus `Proto` on the first (P3) input.

    Training returns ``(maps, protos)``; eval returns ``(predictions, protos, maps)``.
    """

    def __init__(
        self,
        nc: int,
        anchors: Anchors,
        in_channels: Sequence[int],
        masks: int = 32,
        protos: int = 256,
    ) -> None:
        super().__init__(nc, anchors, in_channels, masks=masks)
        self.protos = protos
        self.proto = Proto(in_channels[0], protos, masks)

    def forward(self, x: list[torch.Tensor]) -> Any:
        protos = self.proto(x[0])
        out = super().forward(x)
        return (out, protos) if self.training else (out[0], protos, out[1])
