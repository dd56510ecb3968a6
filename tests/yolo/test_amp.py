from __future__ import annotations

import pytest
import torch

from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.yolo import AmpPolicy, AmpVerdict, amp_check
from yolospan.yolo.heads import Detect


def test_policies_parse_from_strings():
    assert [AmpPolicy.parse(v) for v in ("auto", "on", "off")] == [
        AmpPolicy.AUTO,
        AmpPolicy.ON,
        AmpPolicy.OFF,
    ]
    assert AmpPolicy.parse(AmpPolicy.ON) is AmpPolicy.ON
    with pytest.raises(UserError, match="invalid AMP check policy 'ON'"):
        AmpPolicy.parse("ON")


def test_auto_skips_on_cpu_like_upstream_without_a_forward(probed, capture):
    result = amp_check(probed("yolov5n"), tracer_provider=capture.provider)
    assert result.result is AmpVerdict.SKIPPED and not result.passed
    assert result.reason == "AMP is only used on CUDA devices; upstream skips the check on cpu"
    assert (result.forwards, result.dtype, result.max_abs_diff) == (0, None, None)
    (span,) = capture.finished()
    assert span.name == A.SPAN_AMP_CHECK
    assert span.attributes[A.AMP_RESULT] == "skipped"
    assert span.attributes[A.AMP_REASON] == result.reason
    assert A.AMP_MAX_ABS_DIFF not in span.attributes


def test_off_skips_everywhere(probed):
    result = amp_check(probed("yolov5n"), policy="off")
    assert (result.result, result.reason) == (AmpVerdict.SKIPPED, "AMP check turned off (policy off)")


def test_on_compares_fp32_with_bfloat16_on_the_cpu(probed, capture):
    model = probed("yolov5n")
    result = amp_check(model, policy="on", tracer_provider=capture.provider)
    assert result.result is AmpVerdict.PASSED and result.passed
    assert (result.dtype, result.device, result.input_shape, result.forwards) == (
        "bfloat16",
        "cpu",
        (1, 3, 640, 480),
        2,
    )
    assert 0 < result.max_abs_diff <= 0.1  # bfloat16 is not fp32: something must differ, a little
    assert result.detections == (0, 0)  # random weights: nothing survives NMS, as upstream's vacuous pass
    assert "raw predictions before NMS" in result.compared
    (check,) = capture.named(A.SPAN_AMP_CHECK)
    forwards = capture.children(check)
    assert [s.name for s in forwards] == [A.SPAN_FORWARD, A.SPAN_FORWARD]
    assert [s.attributes.get(A.AUTOCAST) for s in forwards] == [None, "bfloat16"]
    assert all(s.attributes[A.INPUT_SHAPE] == (1, 3, 640, 480) for s in forwards)
    assert all(s.attributes[A.TRAINING] is False for s in forwards)
    assert check.attributes[A.AMP_RESULT] == "passed"
    assert check.attributes[A.AMP_DTYPE] == "bfloat16"
    assert check.attributes[A.AMP_INPUT_SHAPE] == (1, 3, 640, 480)
    assert check.attributes[A.AMP_MAX_ABS_DIFF] == result.max_abs_diff
    assert check.attributes[A.AMP_COMPARED] == result.compared
    assert not any(m._forward_hooks for m in model.modules())  # the copy was traced, not the model


def test_a_user_image_is_used(probed, tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (320, 160), (30, 90, 200)).save(path)
    result = amp_check(probed("yolov5n"), policy="on", image=path)
    assert result.input_shape == (1, 3, 320, 640)


def test_a_disagreement_fails_the_check(probed, monkeypatch):
    decode = Detect._decode

    def drifting(self, i, y):
        out = decode(self, i, y)
        if torch.is_autocast_enabled("cpu"):
            out = out.clone()
            out[..., 0] += 240  # half the 480-pixel input width: 0.5 in normalised box units
        return out

    monkeypatch.setattr(Detect, "_decode", drifting)
    result = amp_check(probed("yolov5n"), policy="on")
    assert result.result is AmpVerdict.FAILED
    assert result.reason.startswith(
        "bfloat16 autocast disagrees with fp32: raw predictions differ by up to 0.5"
    )
    assert result.max_abs_diff == pytest.approx(0.5, abs=0.01)


def test_a_check_that_cannot_run_fails_like_upstream(probed, monkeypatch, capture):
    forward = Detect.forward

    def broken(self, x):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("no bfloat16 kernel here")
        return forward(self, x)

    monkeypatch.setattr(Detect, "forward", broken)
    result = amp_check(probed("yolov5n"), policy="on", tracer_provider=capture.provider)
    assert result.result is AmpVerdict.FAILED
    assert result.reason == "the bfloat16 check raised RuntimeError: no bfloat16 kernel here"
    assert result.forwards == 2
    (check,) = capture.named(A.SPAN_AMP_CHECK)
    assert check.attributes[A.AMP_RESULT] == "failed"
    assert [s.status.is_ok for s in capture.children(check)] == [True, False]


def test_segmentation_models_are_checked_too(probed):
    result = amp_check(probed("yolov5s-seg"), policy="on")
    assert result.result is AmpVerdict.PASSED
