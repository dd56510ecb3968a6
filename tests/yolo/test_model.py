from __future__ import annotations

import torch

import yolospan
from yolospan import attributes as A


def test_eval_forward_outputs(probed):
    model = probed("yolov5n").eval()
    with torch.no_grad():
        predictions, maps = model(torch.zeros(1, 3, 64, 96))
    assert predictions.shape == (1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 85)
    assert [tuple(m.shape) for m in maps] == [(1, 3, 8, 12, 85), (1, 3, 4, 6, 85), (1, 3, 2, 3, 85)]


def test_segmentation_eval_forward_outputs(probed):
    model = probed("yolov5s-seg").eval()
    with torch.no_grad():
        predictions, protos, maps = model(torch.zeros(1, 3, 64, 64))
    assert predictions.shape == (1, 3 * (64 + 16 + 4), 117)
    assert tuple(protos.shape) == (1, 32, 16, 16)
    assert len(maps) == 3


def test_traced_layers_describe_the_config_rows(probed):
    layers = probed("yolov5s").traced_layers()
    assert [layer.index for layer in layers] == list(range(25))
    assert [layer.type for layer in layers][9:13] == ["SPPF", "Conv", "Upsample", "Concat"]
    assert layers[0].sources == (-1,)
    assert layers[12].sources == (-1, 6)
    assert layers[24].sources == (17, 20, 23) and layers[24].type == "Detect"


def test_layer_spans_follow_the_layer_graph(probed, spans):
    model = probed("yolov5n").eval()
    with yolospan.instrument(model, layers=True), torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    forward = spans.one(A.SPAN_FORWARD)
    layers = forward.children
    assert sorted(s.attributes[A.LAYER_INDEX] for s in layers) == list(range(25))
    assert [layers.one(layer_index=i).name for i in range(4)] == ["Conv", "Conv", "C3", "Conv"]
    layers.one("Concat", layer_index=12, layer_from=[-1, 6], input_count=2)
    head_params = sum(p.numel() for p in model.head.parameters())
    layers.one(layer_index=24, layer_from=[17, 20, 23], layer_params=head_params)
    assert sum(s.attributes[A.FLOPS] for s in layers) == forward.attributes[A.FLOPS]
