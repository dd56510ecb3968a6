from __future__ import annotations

import torch

from yolospan.yolo.nms import box_iou, non_max_suppression, xywh_to_xyxy, xyxy_to_xywh


def _row(cx, cy, w, h, obj, *scores):
    return [cx, cy, w, h, obj, *scores]


def test_box_conversions_round_trip():
    boxes = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    assert xywh_to_xyxy(boxes).tolist() == [[8.0, 17.0, 12.0, 23.0]]
    torch.testing.assert_close(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes)


def test_iou():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7, 0.0]]))


def test_overlapping_boxes_of_one_class_keep_the_most_confident():
    prediction = torch.tensor(
        [
            _row(50, 50, 20, 20, 0.9, 0.9, 0.1),
            _row(52, 50, 20, 20, 0.8, 0.9, 0.1),  # IoU 0.82 with the first: suppressed
            _row(52, 50, 20, 20, 0.8, 0.1, 0.9),  # other class: kept
            _row(200, 200, 10, 10, 0.9, 0.2, 0.1),  # conf 0.18 < 0.25: dropped
        ]
    )
    detections = non_max_suppression(prediction)
    assert detections[:, 5].tolist() == [0.0, 1.0]
    torch.testing.assert_close(detections[:, 4], torch.tensor([0.81, 0.72]))
    assert detections[0, :4].tolist() == [40.0, 40.0, 60.0, 60.0]


def test_mask_coefficients_follow_their_box():
    prediction = torch.tensor([_row(5, 5, 2, 2, 1.0, 0.9, 3.0, -2.0)])
    detections = non_max_suppression(prediction, masks=2)
    assert detections.shape == (1, 8)
    assert detections[0, 6:].tolist() == [3.0, -2.0]


def test_nothing_confident_gives_an_empty_result():
    prediction = torch.tensor([_row(5, 5, 2, 2, 0.1, 0.9)])
    assert non_max_suppression(prediction).shape == (0, 6)


def test_at_most_max_det_detections_are_kept():
    prediction = torch.tensor([_row(30.0 * i, 0, 10, 10, 0.9, 0.9) for i in range(50)])
    assert non_max_suppression(prediction, max_det=7).shape == (7, 6)
