"""The console tree shows FlopCounterMode's count beside thop's only where the two differ."""

from __future__ import annotations

import io

import torch
from opentelemetry.sdk.trace import TracerProvider
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.export.console import ConsoleTreeProcessor, describe_call

CALL = {A.INPUT_SHAPE: [1, 3, 32, 32], A.INPUT_COUNT: 1, A.OUTPUT_COUNT: 0, A.FLOPS: 41_563_136}


def test_both_counts_when_they_differ():
    line = describe_call({**CALL, A.FLOPS_TORCH: 41_074_688})
    assert line.endswith("41.6 MFLOPs (torch 41.1 MFLOPs)")


def test_one_count_when_they_agree_or_torch_did_not_count():
    assert describe_call({**CALL, A.FLOPS_TORCH: 41_563_136}).endswith("  41.6 MFLOPs")
    assert describe_call(CALL).endswith("  41.6 MFLOPs")


def test_the_live_tree_of_a_model_counted_both_ways():
    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleTreeProcessor(stream))
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4)).eval()
    with yolospan.instrument(model, layers=True, flops=("thop", "torch"), tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
    lines = stream.getvalue().splitlines()
    conv = next(line for line in lines if "Conv2d" in line)
    batchnorm = next(line for line in lines if "BatchNorm2d" in line)
    assert "1.5 KFLOPs" in conv and "torch" not in conv  # 2 x 4 x 8 x 8 x 3: the same by both
    assert "2.0 KFLOPs (torch 0 FLOPs)" in batchnorm  # FlopCounterMode does not charge BatchNorm
