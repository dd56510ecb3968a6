"""yolospan against the upstream ``yolov5`` package itself, where it is installed (else skipped).

Upstream's ``Model`` is built from yolospan's own YAML file; its state dict (its own initialisation
after its stride probe) is loaded into yolospan's model and the outputs must agree within 1e-5 in
eval and training mode, and yolospan's state dict must load back into upstream's model. Upstream's
``activation:`` key rewrites its class-wide ``Conv.default_act``; every build here resets it.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from opentelemetry.trace import NoOpTracerProvider
from upstream_table import probe_images

from yolospan.tracing import use_tracer_provider
from yolospan.yolo import build, info_profile, load_spec, shipped_configs, stride_probe
from yolospan.yolo.configs import config_dir

yolov5 = pytest.importorskip("yolov5", reason="the upstream yolov5 package is not installed")


def upstream_model(name: str) -> torch.nn.Module:
    from yolov5.models.common import Conv
    from yolov5.models.yolo import Model

    default_act = Conv.default_act
    logging.getLogger("yolov5").disabled = True
    try:
        return Model(str(config_dir() / f"{name}.yaml"))
    finally:
        Conv.default_act = default_act  # upstream's activation: key would leak into later builds


def _tensors(output):
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)]


@pytest.mark.parametrize("name", shipped_configs())
def test_same_numbers_and_outputs_as_upstream(name):
    theirs = upstream_model(name)
    with use_tracer_provider(NoOpTracerProvider()):
        ours = build(load_spec(name)).model
        probe = stride_probe(ours)
        profile = info_profile(ours)
    assert profile.params == sum(p.numel() for p in theirs.parameters())
    assert profile.modules == len(list(theirs.modules()))
    assert list(probe.strides) == theirs.stride.tolist()
    assert torch.allclose(ours.head.anchors, theirs.model[-1].anchors)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    ours.load_state_dict(theirs.state_dict())
    images = probe_images()
    for train in (False, True):
        a, b = copy.deepcopy(ours).train(train), copy.deepcopy(theirs).train(train)
        with torch.no_grad():
            mine, upstream = _tensors(a(images)), _tensors(b(images))
        assert [t.shape for t in mine] == [t.shape for t in upstream]
        for x, y in zip(mine, upstream, strict=True):
            assert torch.allclose(x, y, atol=1e-5, rtol=0), (name, train, float((x - y).abs().max()))
    theirs.load_state_dict(ours.state_dict())  # and back: the keys and shapes are upstream's
