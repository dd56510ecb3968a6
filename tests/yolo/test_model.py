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


def test_layer_spans_follow_the_layer_graph(probed, capture):
    model = probed("yolov5n").eval()
    with yolospan.instrument(model, layers=True, tracer_provider=capture.provider), torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    (forward,) = capture.named(A.SPAN_FORWARD)
    layers = sorted(capture.children(forward), key=lambda s: s.attributes[A.LAYER_INDEX])
    assert [s.name for s in layers][:4] == ["Conv", "Conv", "C3", "Conv"]
    concat = layers[12]
    assert concat.name == "Concat" and concat.attributes[A.LAYER_FROM] == (-1, 6)
    assert concat.attributes[A.INPUT_COUNT] == 2
    detect = layers[24]
    assert detect.attributes[A.LAYER_FROM] == (17, 20, 23)
    assert detect.attributes[A.LAYER_PARAMS] == sum(p.numel() for p in model.head.parameters())
    assert sum(s.attributes[A.FLOPS] for s in layers) == forward.attributes[A.FLOPS]
