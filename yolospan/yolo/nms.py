"""Upstream's non-max suppression for one image, in plain torch (no torchvision needed).

Used by the AMP check to compare post-NMS detections the way upstream's check does.
"""

from __future__ import annotations

import torch

__all__ = ["box_iou", "non_max_suppression", "xywh_to_xyxy", "xyxy_to_xywh"]

_MAX_WH = 7680  # class offset so boxes of different classes never overlap
_MAX_NMS = 30000  # candidates kept for NMS, by confidence


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    xy, wh = boxes[..., :2], boxes[..., 2:4] / 2
    return torch.cat((xy - wh, xy + wh), -1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat(((boxes[..., :2] + boxes[..., 2:4]) / 2, boxes[..., 2:4] - boxes[..., :2]), -1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: [N, 4] × [M, 4] → [N, M]."""
    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, limit: int) -> torch.Tensor:
    """Up to ``limit`` indices kept, highest score first (torchvision.ops.nms's result, truncated)."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    while order.numel() and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        if order.numel() == 1:
            break
        overlap = box_iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def non_max_suppression(
    prediction: torch.Tensor,
    *,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 1000,
    masks: int = 0,
) -> torch.Tensor:
    """One image's ``[anchors, no]`` predictions → detections ``[N, 6 + masks]`` (xyxy, conf, class, masks).

    Same rules as upstream (best class only, conf = objectness × class score, class-aware), computed
    in float32.
    """
    x = prediction.float()
    classes_end = x.shape[1] - masks
    x = x[x[:, 4] > conf_threshold]
    if not x.shape[0]:
        return x.new_zeros((0, 6 + masks))
    x = x.clone()
    x[:, 5:] *= x[:, 4:5]  # upstream scales the mask coefficients too
    box = xywh_to_xyxy(x[:, :4])
    conf, cls = x[:, 5:classes_end].max(1, keepdim=True)
    x = torch.cat((box, conf, cls.float(), x[:, classes_end:]), 1)[conf.view(-1) > conf_threshold]
    if not x.shape[0]:
        return x
    x = x[x[:, 4].argsort(descending=True)[:_MAX_NMS]]
    keep = _greedy_nms(x[:, :4] + x[:, 5:6] * _MAX_WH, x[:, 4], iou_threshold, max_det)
    return x[keep]
