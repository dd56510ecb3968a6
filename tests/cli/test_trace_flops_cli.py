"""``yolospan trace --flops thop,torch``: both counts on every forward, from the same forwards."""

from __future__ import annotations

import pytest

from yolospan import attributes as A
from yolospan.cli import main
from yolospan.export.tracefile import read_trace_file
from yolospan.testing import SpanList

TINY = """\
nc: 2
depth_multiple: 1.0
width_multiple: 1.0
anchors:
  - [10,13, 16,30]
  - [30,61, 62,45]
backbone:
  [[-1, 1, Conv, [8, 3, 2]],
   [-1, 1, Conv, [16, 3, 2]],
   [-1, 1, C3, [16]],
   [-1, 1, Conv, [32, 3, 2]],
   [-1, 1, SPPF, [32, 5]],
  ]
head:
  [[-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 2], 1, Concat, [1]],
   [-1, 1, C3, [16, False]],
   [[7, 4], 1, Detect, [nc, anchors]],
  ]
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def trace(capsys, tmp_path, cfg, *options):
    out = tmp_path / f"t{len(list(tmp_path.iterdir()))}.jsonl"
    code = main(["trace", str(cfg), "--layers", "--exporter", "console,file", "--out", str(out), *options])
    printed = capsys.readouterr().out
    return code, printed, SpanList.from_readable(read_trace_file(out))


def test_flops_thop_torch_puts_both_counts_on_every_forward_and_layer(capsys, tmp_path, tiny, clean_otel_env):
    code, printed, spans = trace(capsys, tmp_path, tiny, "--flops", "thop,torch")
    assert code == 0
    calls = [s for s in spans if A.FLOPS in s.attributes]
    assert calls and all(A.FLOPS_TORCH in s.attributes for s in calls)
    forward = spans.one("forward", phase="info_profile")
    layers = forward.children
    assert sum(s.attributes[A.FLOPS_TORCH] for s in layers) == forward.attributes[A.FLOPS_TORCH]
    upsample = layers.one("Upsample")
    assert upsample.attributes[A.FLOPS] > 0 and upsample.attributes[A.FLOPS_TORCH] == 0
    assert "(torch " in printed


def test_no_extra_forward_and_nothing_by_default(capsys, tmp_path, tiny, clean_otel_env):
    _, printed, plain = trace(capsys, tmp_path, tiny)
    _, _, both = trace(capsys, tmp_path, tiny, "--flops", "thop,torch")
    assert plain.names() == both.names()  # same spans, so the same forwards
    assert all(A.FLOPS_TORCH not in s.attributes for s in plain)
    assert "(torch " not in printed


def test_an_unknown_method_is_a_usage_error(capsys, tiny):
    with pytest.raises(SystemExit) as exit_:
        main(["trace", str(tiny), "--flops", "thop,fvcore"])
    assert exit_.value.code == 2
    assert "unknown FLOPs method 'fvcore'" in capsys.readouterr().err


def test_create_model_refuses_an_unknown_method_before_building(tiny, spans):
    from yolospan.errors import UserError
    from yolospan.yolo import create_model

    with pytest.raises(UserError, match="unknown FLOPs method 'fvcore'"):
        create_model(str(tiny), flops=("thop", "fvcore"))
    assert len(spans) == 0
