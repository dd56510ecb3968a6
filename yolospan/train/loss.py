"""The YOLOv5 loss: anchor matching over neighbouring cells, CIoU boxes, IoU objectness, BCE classes.

For each detection level a target is matched to every anchor whose width and height ratios to
it stay within ``anchor_t`` (4.0), and assigned to its own grid cell plus the two neighbouring
cells nearest to its centre (offset 0.5), which triples the positives. Box loss is 1 - CIoU of
the decoded prediction; the objectness target of a positive is its (detached, clamped) IoU; class
loss is BCE against one-hot targets. Levels are balanced 4.0 / 1.0 / 0.4 for objectness, the
gains are upstream's after `yolospan.train.config.scaled_gains`, and the returned loss is the sum
times the batch size, as upstream back-propagates it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from yolospan.train.config import Hyp, LossGains, scaled_gains
from yolospan.yolo.model import DetectionModel

__all__ = ["BALANCE", "LevelTargets", "YoloLoss", "bbox_ciou"]

BALANCE: dict[int, tuple[float, ...]] = {3: (4.0, 1.0, 0.4)}
"""Objectness weight per level (P3, P4, P5); other level counts use upstream's five-level list."""
_BALANCE_OTHER = (4.0, 1.0, 0.25, 0.06, 0.02)
_CELL_OFFSET = 0.5
# Subtracted (times the offset) from a target's centre: its own cell, then left, above, right, below.
_NEIGHBOURS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))
_EPS = 1e-7


@dataclass(frozen=True)
class LevelTargets:
    """The positives assigned to one detection level, one row per (target, anchor, cell)."""

    image: torch.Tensor  # long [n]: index in the batch
    anchor: torch.Tensor  # long [n]: anchor index at this level
    gy: torch.Tensor  # long [n]: grid row
    gx: torch.Tensor  # long [n]: grid column
    box: torch.Tensor  # float [n, 4]: centre offset from the cell's corner and size, in grid units
    cls: torch.Tensor  # long [n]
    anchors: torch.Tensor  # float [n, 2]: the matched anchor's size in grid units

    def __len__(self) -> int:
        return int(self.image.shape[0])


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor) -> torch.Tensor:
    """Complete IoU of (cx, cy, w, h) boxes, row by row: IoU minus centre-distance and aspect penalties.

    CIoU = IoU - ρ²/c² - αv, with ρ the distance between centres, c the diagonal of the smallest
    enclosing box, v = 4/π² (atan(w2/h2) - atan(w1/h1))² and α = v / (1 - IoU + v), the latter
    treated as a constant for the gradient (Zheng et al., 2020).
    """
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    left1, right1, top1, bottom1 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    left2, right2, top2, bottom2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    overlap_w = (torch.minimum(right1, right2) - torch.maximum(left1, left2)).clamp(0)
    overlap_h = (torch.minimum(bottom1, bottom2) - torch.maximum(top1, top2)).clamp(0)
    inter = overlap_w * overlap_h
    union = w1 * h1 + w2 * h2 - inter + _EPS
    iou = inter / union
    enclosing_w = torch.maximum(right1, right2) - torch.minimum(left1, left2)
    enclosing_h = torch.maximum(bottom1, bottom2) - torch.minimum(top1, top2)
    diagonal2 = enclosing_w**2 + enclosing_h**2 + _EPS
    centre2 = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + _EPS)) - torch.atan(w1 / (h1 + _EPS))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + _EPS))
    return iou - (centre2 / diagonal2 + v * alpha)


class YoloLoss:
    """Callable ``(maps, targets) -> (loss, items)`` for a stride-probed `DetectionModel`.

    ``maps`` is the head's training output (per level ``[b, na, ny, nx, 5 + nc]``); ``targets``
    is ``[n, 6]``: image index, class, cx, cy, w, h normalised to the input. ``loss`` is the
    scalar to back-propagate; ``items`` the detached ``[box, obj, cls]`` per image.
    """

    def __init__(self, model: DetectionModel, *, hyp: Hyp | None = None, imgsz: int = 640) -> None:
        head = model.head
        if head.stride is None:
            raise ValueError("the model's strides are unknown: run the stride probe (build_model) first")
        self.hyp = hyp or Hyp()
        self.nc = head.nc
        self.nl = head.nl
        self.na = head.na
        self.gains: LossGains = scaled_gains(self.hyp, nl=self.nl, nc=self.nc, imgsz=imgsz)
        self.balance = BALANCE.get(self.nl, _BALANCE_OTHER)
        self._head = head
        self._bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.hyp.cls_pw]))
        self._bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.hyp.obj_pw]))

    def __call__(
        self, maps: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = maps[0].device
        if self._bce_cls.pos_weight is not None and self._bce_cls.pos_weight.device != device:
            self._bce_cls.to(device)
            self._bce_obj.to(device)
        zero = torch.zeros(1, device=device)
        lbox, lobj, lcls = zero.clone(), zero.clone(), zero.clone()
        for level, (prediction, assigned) in enumerate(zip(maps, self.assign(maps, targets), strict=True)):
            tobj = torch.zeros(prediction.shape[:4], dtype=prediction.dtype, device=device)
            if len(assigned):
                picked = prediction[assigned.image, assigned.anchor, assigned.gy, assigned.gx]
                pxy, pwh, _, pcls = torch.split(picked, [2, 2, 1, self.nc], 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * assigned.anchors
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), assigned.box)
                lbox = lbox + (1.0 - iou).mean()
                tobj[assigned.image, assigned.anchor, assigned.gy, assigned.gx] = (
                    iou.detach().clamp(0).to(tobj.dtype)
                )
                if self.nc > 1:
                    onehot = torch.zeros_like(pcls)
                    onehot[torch.arange(len(assigned), device=device), assigned.cls] = 1.0
                    lcls = lcls + self._bce_cls(pcls, onehot)
            lobj = lobj + self._bce_obj(prediction[..., 4], tobj) * self.balance[level]
        lbox = lbox * self.gains.box
        lobj = lobj * self.gains.obj
        lcls = lcls * self.gains.cls
        batch = maps[0].shape[0]
        return (lbox + lobj + lcls) * batch, torch.cat((lbox, lobj, lcls)).detach()

    def assign(self, maps: Sequence[torch.Tensor], targets: torch.Tensor) -> list[LevelTargets]:
        """Match ``targets`` to anchors and cells at every level (upstream's ``build_targets``)."""
        device = maps[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        count = targets.shape[0]
        anchor_index = torch.arange(self.na, device=device, dtype=torch.float32)
        # [na, n, 7]: each target once per anchor, with the anchor's index appended.
        expanded = torch.cat(
            (
                targets.unsqueeze(0).expand(self.na, count, 6),
                anchor_index.view(-1, 1, 1).expand(-1, count, 1),
            ),
            2,
        )
        offsets = torch.tensor(_NEIGHBOURS, device=device) * _CELL_OFFSET
        levels = []
        for level, prediction in enumerate(maps):
            ny, nx = prediction.shape[2], prediction.shape[3]
            anchors = self._head.anchors[level].to(device)  # grid units
            scale = torch.tensor([1, 1, nx, ny, nx, ny, 1], device=device, dtype=torch.float32)
            scaled = expanded * scale
            if count:
                ratio = scaled[..., 4:6] / anchors[:, None]
                matched = torch.max(ratio, 1 / ratio).max(2).values < self.hyp.anchor_t
                rows = scaled[matched]  # [m, 7]
                centre = rows[:, 2:4]
                mirrored = torch.tensor([nx, ny], device=device, dtype=torch.float32) - centre
                near_low = ((centre % 1 < _CELL_OFFSET) & (centre > 1)).T  # left, top neighbours
                near_high = ((mirrored % 1 < _CELL_OFFSET) & (mirrored > 1)).T  # right, bottom
                use = torch.stack(
                    (torch.ones_like(near_low[0]), near_low[0], near_low[1], near_high[0], near_high[1])
                )
                rows = rows.unsqueeze(0).expand(5, -1, -1)[use]
                shift = (torch.zeros_like(centre)[None] + offsets[:, None])[use]
            else:
                rows = scaled[0]
                shift = torch.zeros((0, 2), device=device)
            image, cls = rows[:, 0].long(), rows[:, 1].long()
            centre, size, anchor = rows[:, 2:4], rows[:, 4:6], rows[:, 6].long()
            cell = (centre - shift).long()
            gx = cell[:, 0].clamp(0, nx - 1)
            gy = cell[:, 1].clamp(0, ny - 1)
            levels.append(
                LevelTargets(
                    image=image,
                    anchor=anchor,
                    gy=gy,
                    gx=gx,
                    box=torch.cat((centre - cell, size), 1),
                    cls=cls,
                    anchors=anchors[anchor],
                )
            )
        return levels
