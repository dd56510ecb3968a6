"""Step 4, the AMP check: does mixed precision give the same detections as fp32 on this device?

As upstream's ``check_amp``: the image goes through AutoShape's preprocessing, a copy of the model
runs it once in fp32 and once under autocast, and the post-NMS detections (xywhn, conf, class)
must agree within 0.1. With random weights no box survives NMS, so that comparison passes
vacuously; the check therefore also compares every raw prediction (boxes normalised by the input
size, scores as probabilities) and reports the largest absolute difference.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from opentelemetry.trace import Span, TracerProvider

from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.tracing import phase
from yolospan.yolo.images import ImageSource, LoadedImage, PreparedImage, load_image, prepare_image
from yolospan.yolo.model import DetectionModel
from yolospan.yolo.nms import non_max_suppression, xyxy_to_xywh
from yolospan.yolo.weights import LoadedWeights, weights_attributes

__all__ = ["AMP_TOLERANCE", "AmpCheckResult", "AmpPolicy", "AmpVerdict", "amp_check", "autocast_dtype"]

_log = logging.getLogger(__name__)

AMP_TOLERANCE = 0.1
"""Absolute tolerance of both comparisons (upstream's ``atol=0.1``)."""

_COMPARED = (
    "raw predictions before NMS (xywh / input size, objectness and class scores) and, as upstream, "
    f"post-NMS detections (xywhn, conf, class); both within {AMP_TOLERANCE}"
)

RANDOM_WEIGHTS_NOTE = (
    "random weights, not trained ones: no detection survives NMS, so the post-NMS comparison holds "
    "vacuously and only the raw predictions say anything"
)
"""Added to the reason of a check that ran on randomly initialised weights."""


class AmpPolicy(str, enum.Enum):
    """When to run the check: ``auto`` as upstream (CUDA only), ``on`` everywhere, ``off`` never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"

    @classmethod
    def parse(cls, value: AmpPolicy | str) -> AmpPolicy:
        try:
            return cls(value)
        except ValueError:
            raise UserError(f"invalid AMP check policy {value!r}: use auto, on or off") from None


class AmpVerdict(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class AmpCheckResult:
    """The verdict and what it rests on. Fields other than result/reason/device are None when skipped."""

    result: AmpVerdict
    reason: str
    device: str
    dtype: str | None = None  # the autocast dtype compared with fp32
    input_shape: tuple[int, ...] | None = None
    compared: str | None = None
    max_abs_diff: float | None = None  # over the raw predictions
    detections: tuple[int, int] | None = None  # post-NMS counts: fp32, autocast
    forwards: int = 0

    @property
    def passed(self) -> bool:
        """Whether training should use AMP, as upstream's ``check_amp`` returns it."""
        return self.result is AmpVerdict.PASSED


def amp_check(
    model: DetectionModel,
    *,
    policy: AmpPolicy | str = AmpPolicy.AUTO,
    image: ImageSource | LoadedImage = None,
    size: int = 640,
    weights: LoadedWeights | None = None,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> AmpCheckResult:
    """Compare fp32 and autocast forwards of a copy of ``model`` on ``image`` (default: generated).

    ``auto`` runs on CUDA with float16 and skips elsewhere, as upstream; ``on`` also runs on the CPU
    (bfloat16) and, on a GPU that supports bfloat16, compares bfloat16 instead of float16 (see
    `autocast_dtype`). ``weights`` says which weights ``model`` carries (None: random
    initialisation); the span records it, and the reason says so for random weights, since a check
    on untrained weights compares detections that do not exist.
    """
    policy = AmpPolicy.parse(policy)
    # A user's image is read even when the check is skipped, so a bad path is always reported;
    # the default picture is drawn only when it is needed.
    loaded = image if isinstance(image, LoadedImage) or image is None else load_image(image)
    device = next(model.parameters()).device
    skip = _skip_reason(policy, device)
    if skip is not None:
        with phase(A.SPAN_AMP_CHECK, tracer_provider=tracer_provider) as span:
            result = AmpCheckResult(AmpVerdict.SKIPPED, skip, str(device))
            _annotate(span, result, weights)
        return result
    dtype = autocast_dtype(policy, device)
    stride = int(model.stride.max()) if model.stride is not None else 32
    target = copy.deepcopy(model).eval()  # a copy is never traced by the original's hooks
    with phase(A.SPAN_AMP_CHECK, module=target, layers=trace_layers, tracer_provider=tracer_provider) as span:
        prepared = prepare_image(
            loaded if loaded is not None else load_image(None),
            size=size,
            stride=stride,
            device=device,
            dtype=next(model.parameters()).dtype,
        )
        started = 0
        try:
            with torch.inference_mode():
                started = 1
                reference = target(prepared.tensor)[0]
                with torch.autocast(device.type, dtype=dtype):
                    started = 2
                    mixed = target(prepared.tensor)[0]
        except Exception as error:  # upstream: a check that cannot run means "do not use AMP"
            _log.warning("AMP check failed to run", exc_info=True)
            first_line = (str(error).splitlines() or [""])[0]
            result = AmpCheckResult(
                AmpVerdict.FAILED,
                f"the {_name(dtype)} check raised {type(error).__name__}: {first_line}",
                str(device),
                _name(dtype),
                tuple(prepared.tensor.shape),
                forwards=started,
            )
        else:
            result = _compare(reference, mixed, prepared, target.head.masks, dtype, str(device))
            if weights is None:
                result = dataclasses.replace(result, reason=f"{result.reason} ({RANDOM_WEIGHTS_NOTE})")
        _annotate(span, result, weights)
    _log.info("AMP check %s: %s", result.result.value, result.reason)
    return result


def autocast_dtype(
    policy: AmpPolicy, device: torch.device, *, bf16_supported: Callable[[], bool] | None = None
) -> torch.dtype:
    """The dtype compared with fp32: float16 on CUDA as upstream, bfloat16 with ``on`` where the GPU
    supports it (``torch.cuda.is_bf16_supported``), bfloat16 on the CPU."""
    if device.type != "cuda":
        return torch.bfloat16
    if policy is AmpPolicy.ON:
        supported = bf16_supported or (lambda: torch.cuda.is_bf16_supported(including_emulation=False))
        if supported():
            return torch.bfloat16
    return torch.float16


def _skip_reason(policy: AmpPolicy, device: torch.device) -> str | None:
    if policy is AmpPolicy.OFF:
        return "AMP check turned off (policy off)"
    if policy is AmpPolicy.AUTO and device.type in ("cpu", "mps"):
        return f"AMP is only used on CUDA devices; upstream skips the check on {device.type}"
    return None


def _compare(
    reference: torch.Tensor,
    mixed: torch.Tensor,
    prepared: PreparedImage,
    masks: int,
    dtype: torch.dtype,
    device: str,
) -> AmpCheckResult:
    height, width = prepared.tensor.shape[2:]
    scale = reference.new_tensor([width, height, width, height], dtype=torch.float32)
    a, b = reference.float(), mixed.float()
    raw_a = torch.cat((a[..., :4] / scale, a[..., 4:]), -1)
    raw_b = torch.cat((b[..., :4] / scale, b[..., 4:]), -1)
    max_diff = float((raw_a - raw_b).abs().max())
    boxes_a = _xywhn(non_max_suppression(a[0], masks=masks), prepared)
    boxes_b = _xywhn(non_max_suppression(b[0], masks=masks), prepared)
    detections_agree = boxes_a.shape == boxes_b.shape and torch.allclose(boxes_a, boxes_b, atol=AMP_TOLERANCE)
    raw_agree = max_diff <= AMP_TOLERANCE  # False for NaN too
    counts = (boxes_a.shape[0], boxes_b.shape[0])
    name = _name(dtype)
    if raw_agree and detections_agree:
        verdict = AmpVerdict.PASSED
        reason = (
            f"{name} autocast agrees with fp32: largest raw difference {max_diff:.3g} over "
            f"{a.shape[1]} predictions, {counts[0]} detection(s) after NMS in both"
        )
    else:
        verdict = AmpVerdict.FAILED
        problems = []
        if not raw_agree:
            problems.append(f"raw predictions differ by up to {max_diff:.3g}")
        if not detections_agree:
            problems.append(f"post-NMS detections differ ({counts[0]} in fp32, {counts[1]} in {name})")
        reason = f"{name} autocast disagrees with fp32: " + "; ".join(problems)
    return AmpCheckResult(
        verdict,
        reason,
        device,
        name,
        tuple(prepared.tensor.shape),
        _COMPARED,
        max_diff,
        counts,
        forwards=2,
    )


def _xywhn(detections: torch.Tensor, prepared: PreparedImage) -> torch.Tensor:
    """Detections mapped back onto the original image, as upstream's ``Detections.xywhn`` rows."""
    height, width = prepared.original_shape
    boxes = detections[:, :4].clone()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - prepared.pad[0]) / prepared.gain).clamp(0, width)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - prepared.pad[1]) / prepared.gain).clamp(0, height)
    normalised = xyxy_to_xywh(boxes) / boxes.new_tensor([width, height, width, height])
    return torch.cat((normalised, detections[:, 4:6]), 1)


def _annotate(span: Span, result: AmpCheckResult, weights: LoadedWeights | None) -> None:
    if not span.is_recording():
        return
    span.set_attributes(weights_attributes(weights))
    span.set_attribute(A.AMP_RESULT, result.result.value)
    span.set_attribute(A.AMP_REASON, result.reason)
    if result.dtype is not None:
        span.set_attribute(A.AMP_DTYPE, result.dtype)
    if result.input_shape is not None:
        span.set_attribute(A.AMP_INPUT_SHAPE, list(result.input_shape))
    if result.compared is not None:
        span.set_attribute(A.AMP_COMPARED, result.compared)
    if result.max_abs_diff is not None:
        span.set_attribute(A.AMP_MAX_ABS_DIFF, result.max_abs_diff)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
