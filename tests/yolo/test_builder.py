from __future__ import annotations

import pytest
import torch
from torch import nn

from yolospan.yolo import build, load_spec
from yolospan.yolo.blocks import C3, SPPF, Concat, Conv
from yolospan.yolo.builder import make_divisible, scaled_depth
from yolospan.yolo.heads import Detect


@pytest.mark.parametrize(("value", "expected"), [(32.0, 32), (33.0, 40), (0.25 * 1024, 256), (0.75 * 64, 48)])
def test_make_divisible_rounds_up_to_a_multiple_of_8(value, expected):
    assert make_divisible(value, 8) == expected


@pytest.mark.parametrize(
    ("number", "multiple", "expected"),
    [(1, 0.33, 1), (3, 0.33, 1), (6, 0.33, 2), (9, 0.33, 3), (9, 0.67, 6), (9, 1.33, 12), (5, 0.5, 2)],
)
def test_depth_scaling_uses_pythons_round(number, multiple, expected):
    assert scaled_depth(number, multiple) == expected  # round(2.5) == 2, as upstream gets it


def test_yolov5s_layers_and_channels():
    model = build(load_spec("yolov5s")).model
    layers = list(model.model)
    assert [type(m).__name__ for m in layers] == (
        ["Conv", "Conv", "C3", "Conv", "C3", "Conv", "C3", "Conv", "C3", "SPPF"]
        + ["Conv", "Upsample", "Concat", "C3"] * 2
        + ["Conv", "Concat", "C3"] * 2
        + ["Detect"]
    )
    first = layers[0]
    assert isinstance(first, Conv)
    assert (first.conv.in_channels, first.conv.out_channels, first.conv.kernel_size) == (3, 32, (6, 6))
    assert (first.conv.stride, first.conv.padding) == ((2, 2), (2, 2))
    assert [len(m.m) for m in layers if isinstance(m, C3)] == [1, 2, 3, 1, 1, 1, 1, 1]
    assert isinstance(layers[9], SPPF) and layers[9].cv2.conv.out_channels == 512
    assert isinstance(layers[12], Concat) and layers[12].d == 1
    assert isinstance(layers[11], nn.Upsample) and layers[11].mode == "nearest"
    assert [c.in_channels for c in model.head.m] == [128, 256, 512]
    assert model.save == (4, 6, 10, 14, 17, 20, 23)
    assert [r.source for r in model.routes][12] == (-1, 6)


def test_c3_in_the_head_has_no_shortcut():
    model = build(load_spec("yolov5s")).model
    assert all(b.add for b in model.model[2].m)
    assert not any(b.add for b in model.model[13].m)


def test_state_dict_keys_are_upstreams():
    keys = build(load_spec("yolov5s-seg")).model.state_dict().keys()
    for key in (
        "model.0.conv.weight",
        "model.0.bn.running_var",
        "model.2.m.0.cv1.conv.weight",
        "model.9.cv2.bn.bias",
        "model.24.anchors",
        "model.24.m.2.bias",
        "model.24.proto.cv2.conv.weight",
    ):
        assert key in keys
    assert not any(k.endswith("stride") for k in keys)


def test_a_repeated_conv_becomes_a_sequential(tiny_yaml):
    text = tiny_yaml.read_text().replace("[-1, 1, SPPF, [32, 5]]", "[-1, 2, Conv, [32, 3, 1]]")
    tiny_yaml.write_text(text)
    model = build(load_spec(tiny_yaml)).model
    assert isinstance(model.model[4], nn.Sequential) and len(model.model[4]) == 2
    assert model.routes[4].type == "Conv"


def test_a_model_needs_a_detect_head():
    from yolospan.yolo.model import DetectionModel

    with pytest.raises(TypeError, match="Detect head"):
        DetectionModel(load_spec("yolov5n"), [nn.Identity()], [], [])


def test_building_runs_no_forward():
    calls = []
    handle = nn.modules.module.register_module_forward_pre_hook(lambda m, a: calls.append(m))
    try:
        model = build(load_spec("yolov5n")).model
    finally:
        handle.remove()
    assert calls == []
    assert model.stride is None
    assert isinstance(model.head, Detect)
    assert torch.equal(model.head.anchors[0], torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]]))
