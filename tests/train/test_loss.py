from __future__ import annotations

import math

import pytest
import torch

import yolospan
from yolospan.train import Hyp, YoloLoss, bbox_ciou, scaled_gains


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return yolospan.build_model("yolov5n", nc=3).train()


def _maps(model, imgsz=64, batch=2):
    """Zero predictions shaped like the head's training output at ``imgsz``."""
    head = model.head
    return [
        torch.zeros(batch, head.na, imgsz // int(s), imgsz // int(s), head.no, requires_grad=True)
        for s in head.stride
    ]


def test_ciou_is_one_for_identical_boxes_and_penalises_distance_and_aspect():
    box = torch.tensor([[5.0, 5.0, 2.0, 4.0]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-6)
    far = torch.tensor([[15.0, 5.0, 2.0, 4.0]])  # disjoint: IoU 0, centre penalty 10²/(12²+4²)
    assert bbox_ciou(box, far).item() == pytest.approx(-100 / 160, abs=1e-6)
    wide = torch.tensor([[5.0, 5.0, 4.0, 2.0]])  # same centre and area, rotated aspect
    iou = 4 / 12
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
    assert bbox_ciou(box, wide).item() == pytest.approx(iou - v * v / (v - iou + 1), abs=1e-6)


def test_gains_are_scaled_as_upstream():
    gains = scaled_gains(Hyp(), nl=3, nc=80, imgsz=640)
    assert (gains.box, gains.obj, gains.cls) == pytest.approx((0.05, 1.0, 0.5))
    gains = scaled_gains(Hyp(), nl=3, nc=3, imgsz=320)
    assert (gains.box, gains.obj, gains.cls) == pytest.approx((0.05, 0.25, 0.5 * 3 / 80))
    assert scaled_gains(Hyp(), nl=4, nc=80, imgsz=640).box == pytest.approx(0.05 * 3 / 4)


def test_a_target_is_assigned_to_its_cell_and_two_neighbours_per_matching_anchor(model):
    loss = YoloLoss(model, imgsz=64)
    # At P3 (8x8 grid), a 16x16-pixel box centred at (20, 28) px → grid (2.5, 3.5) + ε: the
    # fractions are just over .5 → right and lower neighbours. Anchors at P3: (10,13), (16,30),
    # (33,23) px; ratios to 16x16 stay under 4 for all three.
    targets = torch.tensor([[0, 1, 20.2 / 64, 28.2 / 64, 16 / 64, 16 / 64]])
    p3, p4, p5 = loss.assign(_maps(model), targets)
    assert len(p3) == 3 * 3
    assert sorted(set(zip(p3.gx.tolist(), p3.gy.tolist(), strict=True))) == [(2, 3), (2, 4), (3, 3)]
    assert p3.anchor.tolist().count(0) == 3 and p3.cls.tolist() == [1] * 9
    torch.testing.assert_close(p3.box[0], torch.tensor([20.2 / 8 - 2, 28.2 / 8 - 3, 2.0, 2.0]))
    # At P5 (2x2 grid, anchors 116x90 px and up, i.e. ratio > 4 for a 16 px box): no match.
    assert len(p5) == 0
    assert len(p4) > 0


def test_targets_on_the_border_get_no_neighbour_outside_the_grid(model):
    loss = YoloLoss(model, imgsz=64)
    targets = torch.tensor([[0, 0, 2 / 64, 2 / 64, 12 / 64, 12 / 64]])  # grid (0.25, 0.25) at P3
    p3 = loss.assign(_maps(model), targets)[0]
    assert set(p3.gx.tolist()) == {0} and set(p3.gy.tolist()) == {0}


def test_no_targets_means_only_objectness_loss(model):
    loss = YoloLoss(model, imgsz=64)
    total, items = loss(_maps(model), torch.zeros((0, 6)))
    box, obj, cls = items.tolist()
    assert box == 0 and cls == 0
    # Every logit 0 against target 0: BCE log 2, balanced 4 + 1 + 0.4, obj gain (64/640)².
    assert obj == pytest.approx(math.log(2) * 5.4 * 0.01, rel=1e-5)
    assert total.item() == pytest.approx(obj * 2, rel=1e-5)  # times the batch size


def _perfect_maps(model, loss, targets, logit=12.0):
    """Predictions that decode exactly to each assigned target box, with confident classes."""
    maps = [m.detach().clone() for m in _maps(model)]
    for level, assigned in enumerate(loss.assign(maps, targets)):
        for row in range(len(assigned)):
            xy = assigned.box[row, :2]
            wh = assigned.box[row, 2:] / assigned.anchors[row]
            # sigmoid(t) * 2 - 0.5 = xy  and  (sigmoid(t) * 2)² = wh
            txy = torch.logit((xy + 0.5) / 2)
            twh = torch.logit(wh.sqrt() / 2)
            cls = torch.full((model.nc,), -logit)
            cls[assigned.cls[row]] = logit
            index = (assigned.image[row], assigned.anchor[row], assigned.gy[row], assigned.gx[row])
            maps[level][index] = torch.cat((txy, twh, torch.tensor([logit]), cls))
    return maps


def test_a_perfect_prediction_has_almost_no_box_or_class_loss(model):
    loss = YoloLoss(model, imgsz=64)
    targets = torch.tensor([[0, 2, 0.4, 0.55, 0.3, 0.25], [1, 0, 0.7, 0.3, 0.2, 0.4]])
    _, perfect = loss(_perfect_maps(model, loss, targets), targets)
    _, blank = loss(_maps(model), targets)
    assert perfect[0] < 1e-5 and blank[0] > 0.01
    assert perfect[2] < 1e-5 and blank[2] > 0.01


def test_the_loss_back_propagates_to_the_maps(model):
    loss = YoloLoss(model, imgsz=64)
    maps = _maps(model)
    total, _ = loss(maps, torch.tensor([[0, 1, 0.5, 0.5, 0.25, 0.25]]))
    total.backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in maps)


def test_the_model_must_be_stride_probed():
    from yolospan.yolo import build, load_spec

    with pytest.raises(ValueError, match="stride probe"):
        YoloLoss(build(load_spec("yolov5n")).model)
