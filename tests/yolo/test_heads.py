from __future__ import annotations

import torch

from yolospan.yolo.heads import Detect, Segment

ANCHORS = ((1.0, 2.0), (3.0, 4.0))  # grid units, one anchor per level


def _head(cls=Detect, **kwargs):
    torch.manual_seed(0)
    head = cls(2, ANCHORS, (4, 8), **kwargs)
    head.stride = torch.tensor([8.0, 16.0])
    return head


def test_training_returns_the_maps_in_upstreams_layout():
    head = _head()
    maps = head([torch.rand(2, 4, 6, 5), torch.rand(2, 8, 3, 3)])
    assert [tuple(m.shape) for m in maps] == [(2, 1, 6, 5, 7), (2, 1, 3, 3, 7)]


def test_eval_decodes_boxes_in_input_pixels():
    head = _head().eval()
    x = [torch.rand(1, 4, 2, 3), torch.rand(1, 8, 1, 1)]
    predictions, maps = head([t.clone() for t in x])
    assert predictions.shape == (1, 2 * 3 + 1, 7)
    raw = maps[0][0, 0, 1, 2].sigmoid()  # level 0, row y=1, column x=2
    expected_xy = (raw[:2] * 2 + torch.tensor([2.0, 1.0]) - 0.5) * 8
    expected_wh = (raw[2:4] * 2) ** 2 * torch.tensor([1.0, 2.0]) * 8
    decoded = predictions[0, 1 * 3 + 2]
    torch.testing.assert_close(decoded[:2], expected_xy)
    torch.testing.assert_close(decoded[2:4], expected_wh)
    torch.testing.assert_close(decoded[4:], raw[4:])


def test_the_grid_is_cached_per_map_size():
    head = _head().eval()
    head([torch.rand(1, 4, 2, 3), torch.rand(1, 8, 1, 1)])
    grid = head._grids[0]
    head([torch.rand(1, 4, 2, 3), torch.rand(1, 8, 1, 1)])
    assert head._grids[0] is grid
    head([torch.rand(1, 4, 4, 4), torch.rand(1, 8, 2, 2)])
    assert head._grids[0] is not grid and head._grids[0][0].shape == (1, 1, 4, 4, 2)
    head.double()
    predictions, _ = head([torch.rand(1, 4, 4, 4).double(), torch.rand(1, 8, 2, 2).double()])
    assert predictions.dtype == torch.float64 and head._grids[0][0].dtype == torch.float64


def test_segment_adds_mask_coefficients_and_prototypes():
    head = _head(Segment, masks=3, protos=8)
    maps, protos = head([torch.rand(1, 4, 4, 4), torch.rand(1, 8, 2, 2)])
    assert [tuple(m.shape) for m in maps] == [(1, 1, 4, 4, 10), (1, 1, 2, 2, 10)]
    assert tuple(protos.shape) == (1, 3, 8, 8)
    head.eval()
    x = [torch.rand(1, 4, 4, 4), torch.rand(1, 8, 2, 2)]
    predictions, protos, maps = head(x)
    assert predictions.shape == (1, 20, 10)
    torch.testing.assert_close(predictions[0, 0, 7:], maps[0][0, 0, 0, 0, 7:])  # coefficients stay raw
    torch.testing.assert_close(predictions[0, 0, 4:7], maps[0][0, 0, 0, 0, 4:7].sigmoid())
