from __future__ import annotations

import pytest
import torch

import yolospan
from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.yolo import AmpPolicy, AmpVerdict, amp_check
from yolospan.yolo.amp import RANDOM_WEIGHTS_NOTE, autocast_dtype
from yolospan.yolo.heads import Detect
from yolospan.yolo.weights import LoadedWeights


def test_policies_parse_from_strings():
    assert [AmpPolicy.parse(v) for v in ("auto", "on", "off")] == [
        AmpPolicy.AUTO,
        AmpPolicy.ON,
        AmpPolicy.OFF,
    ]
    assert AmpPolicy.parse(AmpPolicy.ON) is AmpPolicy.ON
    with pytest.raises(UserError, match="invalid AMP check policy 'ON'"):
        AmpPolicy.parse("ON")


def test_auto_skips_on_cpu_like_upstream_without_a_forward(probed, spans):
    result = amp_check(probed("yolov5n"))
    assert result.result is AmpVerdict.SKIPPED and not result.passed
    assert result.reason == "AMP is only used on CUDA devices; upstream skips the check on cpu"
    assert (result.forwards, result.dtype, result.max_abs_diff) == (0, None, None)
    spans.assert_count(1)  # the check's span alone: no forward ran
    spans.one(A.SPAN_AMP_CHECK, amp_result="skipped", amp_reason=result.reason, amp_max_abs_diff=None)


def test_off_skips_everywhere(probed):
    result = amp_check(probed("yolov5n"), policy="off")
    assert (result.result, result.reason) == (AmpVerdict.SKIPPED, "AMP check turned off (policy off)")


def test_on_compares_fp32_with_bfloat16_on_the_cpu(probed, spans):
    model = probed("yolov5n")
    result = amp_check(model, policy="on")
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
    check = spans.one(
        A.SPAN_AMP_CHECK,
        amp_result="passed",
        amp_dtype="bfloat16",
        amp_input_shape=[1, 3, 640, 480],
        amp_max_abs_diff=result.max_abs_diff,
        amp_compared=result.compared,
    )
    forwards = check.children
    forwards.assert_names([A.SPAN_FORWARD, A.SPAN_FORWARD])
    assert [s.attributes.get(A.AUTOCAST) for s in forwards] == [None, "bfloat16"]
    forwards.assert_count(2, input_shape=[1, 3, 640, 480], training=False)
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


def test_a_check_that_cannot_run_fails_like_upstream(probed, monkeypatch, spans):
    forward = Detect.forward

    def broken(self, x):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("no bfloat16 kernel here")
        return forward(self, x)

    monkeypatch.setattr(Detect, "forward", broken)
    result = amp_check(probed("yolov5n"), policy="on")
    assert result.result is AmpVerdict.FAILED
    assert result.reason == "the bfloat16 check raised RuntimeError: no bfloat16 kernel here"
    assert result.forwards == 2
    check = spans.one(A.SPAN_AMP_CHECK, amp_result="failed")
    assert [s.status for s in check.children] == ["UNSET", "ERROR"]


def test_segmentation_models_are_checked_too(probed):
    result = amp_check(probed("yolov5s-seg"), policy="on")
    assert result.result is AmpVerdict.PASSED


def test_random_weights_are_said_in_the_reason(probed, spans):
    result = amp_check(probed("yolov5n"), policy="on")
    assert result.reason.endswith(f" ({RANDOM_WEIGHTS_NOTE})")
    assert result.reason.startswith("bfloat16 autocast agrees with fp32: largest raw difference ")
    spans.one(A.SPAN_AMP_CHECK, amp_reason=result.reason)


def test_trained_weights_leave_the_note_out(probed):
    weights = LoadedWeights(path="last.pt", source="ema", tensors=0)
    result = amp_check(probed("yolov5n"), policy="on", weights=weights)
    assert result.passed and RANDOM_WEIGHTS_NOTE not in result.reason


@pytest.mark.parametrize(
    ("policy", "device", "bf16", "expected"),
    [
        (AmpPolicy.AUTO, "cuda:0", True, torch.float16),  # upstream's check, whatever the GPU supports
        (AmpPolicy.ON, "cuda:0", True, torch.bfloat16),
        (AmpPolicy.ON, "cuda:0", False, torch.float16),  # e.g. a T4 or V100
        (AmpPolicy.ON, "cpu", False, torch.bfloat16),
        (AmpPolicy.AUTO, "cpu", False, torch.bfloat16),
    ],
)
def test_the_autocast_dtype_compared(policy, device, bf16, expected):
    assert autocast_dtype(policy, torch.device(device), bf16_supported=lambda: bf16) == expected


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@CUDA
def test_on_cuda_auto_compares_float16_as_upstream(spans):
    created = yolospan.create_model("yolov5s", device="cuda")
    result = created.amp
    assert (result.result, result.dtype, result.input_shape, result.forwards) == (
        AmpVerdict.PASSED,
        "float16",
        (1, 3, 640, 480),
        2,
    )
    assert result.reason.endswith(f" ({RANDOM_WEIGHTS_NOTE})")
    assert 0 < result.max_abs_diff <= 0.1
    check = spans.one(A.SPAN_AMP_CHECK, amp_result="passed", amp_dtype="float16")
    assert [s.attributes.get(A.AUTOCAST) for s in check.children] == [None, "float16"]


@CUDA
def test_on_cuda_policy_on_compares_bfloat16_where_supported():
    created = yolospan.create_model("yolov5n", device="cuda", amp_check="on")
    supported = torch.cuda.is_bf16_supported(including_emulation=False)
    assert created.amp.dtype == ("bfloat16" if supported else "float16")
    assert created.amp.passed
