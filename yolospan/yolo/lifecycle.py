"""The steps of creating a model, each an explicit call that returns what it did.

Upstream's ``Model(cfg)`` does all of this inside its constructor; here the steps are named:
`build`, `stride_probe`, `info_profile` (then `yolospan.yolo.amp.amp_check`), and optionally
`fuse`. Each step that runs forwards does so inside its own phase span (see
`yolospan.attributes`), and those forwards are traced whenever a tracer provider is active.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import TypeVar

import thop
import torch
from opentelemetry.trace import TracerProvider
from torch import nn

from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.tracing import invalidate_flops, phase
from yolospan.tracing._flops import thop_custom_ops
from yolospan.yolo.builder import build_layers
from yolospan.yolo.fuse import fuse_convs
from yolospan.yolo.heads import Detect
from yolospan.yolo.limits import MAX_IMGSZ
from yolospan.yolo.model import DetectionModel
from yolospan.yolo.spec import ModelSpec

__all__ = [
    "PROBE_SIZE",
    "BuildResult",
    "FuseResult",
    "InfoProfileResult",
    "StrideProbeResult",
    "build",
    "check_imgsz",
    "fuse",
    "info_profile",
    "stride_probe",
]

_log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=nn.Module)

PROBE_SIZE = 256
"""Side of the zeros image the stride probe runs (upstream's ``s = 256``)."""

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.03
_OBJECTS_PER_IMAGE = 8  # objectness prior: about 8 objects in a 640 image
_CLASS_PRIOR = 0.6


@dataclass(frozen=True)
class BuildResult:
    """Step 1: the layers as built, with PyTorch's default initialisation; no forward has run."""

    model: DetectionModel
    layers: int  # rows of backbone + head
    params: int


@dataclass(frozen=True)
class StrideProbeResult:
    """Step 2: one training-mode forward of zeros and the head initialisation it enables.

    The forward runs in training mode, as upstream's does, so every BatchNorm's running statistics
    take one update (``batchnorm_updates`` counts them; running_var becomes 0.9). Afterwards the
    anchors are in grid units, the head's biases carry their priors and BatchNorm uses eps 1e-3,
    momentum 0.03.
    """

    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]  # per detection level: [1, na, ny, nx, no]
    strides: tuple[float, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]  # grid units, per level
    anchors_reversed: bool  # the config listed levels largest first; upstream flips them
    objectness_offsets: tuple[float, ...]  # log(8 / (640 / s)^2) per level
    class_offset: float  # log(0.6 / (nc - 0.99999))
    batchnorm_updates: int
    forwards: int = 1


@dataclass(frozen=True)
class InfoProfileResult:
    """Step 3: sizes and FLOPs as upstream's model summary reports them.

    ``modules`` is what upstream v7.0 prints as "layers": every module in the tree (214 for
    yolov5s); ``leaf_modules`` counts only modules without children (125 for yolov5s). FLOPs are
    thop's count of one forward of a ``probe_size``² image on a copy, scaled to ``imgsz``².
    """

    name: str
    modules: int
    leaf_modules: int
    params: int
    gradients: int
    probe_size: int
    probe_flops: int  # 2 × MACs of the probe forward
    imgsz: int
    gflops: float  # at imgsz², unrounded
    forwards: int = 1

    @property
    def summary(self) -> str:
        """Upstream's summary line, e.g. ``YOLOv5s summary: 214 layers, 7235389 parameters, ...``."""
        title = self.name.replace("yolov5", "YOLOv5")
        return (
            f"{title} summary: {self.modules} layers, {self.params} parameters, "
            f"{self.gradients} gradients, {self.gflops:.1f} GFLOPs"
        )


@dataclass(frozen=True)
class FuseResult:
    """Step 5 (optional): Conv+BatchNorm pairs folded, and the profile upstream prints after it."""

    folded: int
    params_before: int
    params_after: int
    profile: InfoProfileResult | None


def build(spec: ModelSpec) -> BuildResult:
    """Step 1: the layers from a validated spec. Runs no forward, so it has no span of its own."""
    model = build_layers(spec)
    return BuildResult(model, len(spec.layers), _count_params(model))


def stride_probe(
    model: DetectionModel,
    *,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> StrideProbeResult:
    """Step 2: learn the strides from one forward of zeros, then initialise anchors, biases and BatchNorm."""
    head = model.head
    if head.stride is not None:
        raise RuntimeError("the stride probe already ran on this model; it initialises the head only once")
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    tracked_before = [int(bn.num_batches_tracked or 0) for bn in batchnorms]
    image = torch.zeros(1, model.spec.ch, PROBE_SIZE, PROBE_SIZE, device=_device_of(model))
    was_training = model.training
    with phase(A.SPAN_STRIDE_PROBE, module=model, layers=trace_layers, tracer_provider=tracer_provider):
        model.train()
        try:
            with torch.no_grad():
                output = model(image)
        finally:
            model.train(was_training)
        maps = output[0] if isinstance(output, tuple) else output  # Segment returns (maps, protos)
        head.stride = torch.tensor([PROBE_SIZE / m.shape[-2] for m in maps], device=image.device)
        reversed_ = _check_anchor_order(head)
        with torch.no_grad():
            head.anchors /= head.stride.view(-1, 1, 1)
        head.reset_grids()
        objectness, classes = _initialize_biases(head)
        _initialize_weights(model)
    tracked_after = [int(bn.num_batches_tracked or 0) for bn in batchnorms]
    updates = sum(after != before for after, before in zip(tracked_after, tracked_before, strict=True))
    return StrideProbeResult(
        input_shape=tuple(image.shape),
        output_shapes=tuple(tuple(m.shape) for m in maps),
        strides=tuple(head.stride.tolist()),
        anchors=tuple(tuple((w, h) for w, h in level) for level in head.anchors.tolist()),
        anchors_reversed=reversed_,
        objectness_offsets=objectness,
        class_offset=classes,
        batchnorm_updates=updates,
    )


def info_profile(
    model: DetectionModel,
    *,
    imgsz: int = 640,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> InfoProfileResult:
    """Step 3: count modules, parameters and gradients, and FLOPs by thop on a copy, like upstream.

    thop runs one eval-mode forward of a ``max(max stride, 32)``² image on a copy of the model;
    that forward is the one traced in the ``info_profile`` phase.
    """
    check_imgsz(imgsz)
    stride = model.stride
    probe = max(int(stride.max()), 32) if stride is not None else 32
    params = _count_params(model)
    gradients = sum(p.numel() for p in model.parameters() if p.requires_grad)
    modules = list(model.modules())
    leaves = sum(1 for m in modules if next(m.children(), None) is None)
    image = torch.zeros(1, model.spec.ch, probe, probe, device=_device_of(model), dtype=_dtype_of(model))
    target = copy.deepcopy(model)  # a copy is never traced by the original's hooks
    with phase(
        A.SPAN_INFO_PROFILE, module=target, layers=trace_layers, tracer_provider=tracer_provider
    ) as span:
        # yolospan's own rules (nearest upsampling) make the count the same under every thop release.
        macs, _ = thop.profile(target, inputs=(image,), custom_ops=thop_custom_ops(target), verbose=False)
        probe_flops = round(macs * 2)
        gflops = probe_flops / 1e9 * (imgsz / probe) ** 2
        result = InfoProfileResult(
            name=model.spec.name,
            modules=len(modules),
            leaf_modules=leaves,
            params=params,
            gradients=gradients,
            probe_size=probe,
            probe_flops=probe_flops,
            imgsz=imgsz,
            gflops=gflops,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    A.GFLOPS: round(gflops, 1),
                    A.PROFILE_IMGSZ: imgsz,
                    A.PROFILE_INPUT: probe,
                    A.PARAMS: params,
                    A.GRADIENTS: gradients,
                    A.LAYERS: len(modules),
                }
            )
    _log.info("%s", result.summary)
    return result


def fuse(
    model: DetectionModel,
    *,
    profile: bool = True,
    imgsz: int = 640,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> FuseResult:
    """Step 5 (optional): fold BatchNorm into the convs for inference, then profile again as upstream does.

    Fused convs have no gradients (upstream's choice). The profile, when asked for, runs inside the
    ``fuse`` span as its own ``info_profile`` phase.
    """
    with phase(A.SPAN_FUSE, tracer_provider=tracer_provider) as current:
        before = _count_params(model)
        folded = fuse_convs(model)
        invalidate_flops(model)
        current.set_attribute(A.FUSE_FOLDED, folded)
        report = (
            info_profile(model, imgsz=imgsz, tracer_provider=tracer_provider, trace_layers=trace_layers)
            if profile
            else None
        )
    return FuseResult(folded, before, _count_params(model), report)


def check_imgsz(imgsz: object) -> int:
    """The profile's image size, validated: a positive integer (``--imgsz`` reaches here unchanged)."""
    if isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 1:
        raise UserError(f"imgsz must be an integer >= 1, got {imgsz!r}")
    if imgsz > MAX_IMGSZ:
        raise UserError(f"imgsz {imgsz} is above the limit of {MAX_IMGSZ}")
    return imgsz


# --- helpers ------------------------------------------------------------------------------------


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _dtype_of(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _check_anchor_order(head: Detect) -> bool:
    """Flip the anchor levels when their sizes run against the strides; True when flipped."""
    area = head.anchors.prod(-1).mean(-1).view(-1)
    assert head.stride is not None
    delta_area = area[-1] - area[0]
    delta_stride = head.stride[-1] - head.stride[0]
    if delta_area and delta_area.sign() != delta_stride.sign():
        _log.info("reversing the anchor order to match the strides")
        with torch.no_grad():
            head.anchors[:] = head.anchors.flip(0)
        return True
    return False


def _initialize_biases(head: Detect) -> tuple[tuple[float, ...], float]:
    """Objectness and class priors on the head's conv biases, exactly as upstream adds them."""
    assert head.stride is not None
    class_offset = math.log(_CLASS_PRIOR / (head.nc - 0.99999))
    objectness: list[float] = []
    for conv, stride in zip(head.m, head.stride.tolist(), strict=True):
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        offset = math.log(_OBJECTS_PER_IMAGE / (640 / stride) ** 2)
        with torch.no_grad():
            bias = conv.bias.view(head.na, -1)
            bias[:, 4] += offset
            bias[:, 5 : 5 + head.nc] += class_offset
        objectness.append(offset)
    return tuple(objectness), class_offset


def _initialize_weights(model: nn.Module) -> None:
    """Upstream's ``initialize_weights``: BatchNorm eps/momentum and in-place activations; convs untouched."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.eps = _BN_EPS
            module.momentum = _BN_MOMENTUM
        elif type(module) in (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU):
            module.inplace = True  # type: ignore[assignment]
