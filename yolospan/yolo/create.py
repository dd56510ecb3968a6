"""Whole-model creation in upstream's order, each under one ``model.init`` span.

`build_model` is upstream's ``Model(cfg)`` minus the profile (steps 1–2); `create_model` is what
upstream's training script does to a new model: build, stride probe, info profile, move to the
device, AMP check (steps 1–4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from opentelemetry.trace import Span, TracerProvider

from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.tracing import flop_methods, span
from yolospan.yolo import amp as _amp
from yolospan.yolo.amp import AmpCheckResult, AmpPolicy
from yolospan.yolo.images import ImageSource, load_image
from yolospan.yolo.lifecycle import (
    BuildResult,
    FuseResult,
    InfoProfileResult,
    StrideProbeResult,
    build,
    check_imgsz,
    fuse,
    info_profile,
    stride_probe,
)
from yolospan.yolo.limits import check_model
from yolospan.yolo.model import DetectionModel
from yolospan.yolo.spec import ModelSpec, load_spec

__all__ = ["CreatedModel", "build_model", "create_model", "resolve_device"]

Config = str | os.PathLike[str] | Mapping[str, Any]
"""A shipped config name (``yolov5s``), the path of a YAML config, or its contents as a dict."""

_CUDA = re.compile(r"cuda(?::(\d+))?")


@dataclass(frozen=True)
class CreatedModel:
    """A model after steps 1–4, with what each step reported."""

    model: DetectionModel
    build: BuildResult
    stride_probe: StrideProbeResult
    profile: InfoProfileResult
    amp: AmpCheckResult
    fused: FuseResult | None = None
    """What fusing reported, when `create_model` was asked to fuse."""


def build_model(
    cfg: Config,
    nc: int | None = None,
    ch: int | None = None,
    *,
    anchors: Sequence[Sequence[float]] | int | None = None,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> DetectionModel:
    """A model built and stride-probed on the CPU (steps 1–2): upstream's ``Model(cfg)`` minus its profile.

    ``ch`` (input channels) defaults to the config's ``ch``, then 3; ``nc`` and ``anchors``
    override the config's.
    """
    spec = load_spec(cfg, nc=nc, anchors=anchors, ch=ch)  # a bad config fails before any span
    check_model(spec)  # as does one that cannot be built or run, or is beyond the limits
    with span(A.SPAN_MODEL_INIT, tracer_provider=tracer_provider) as root:
        built = _build(spec, root)
        probe = stride_probe(built.model, tracer_provider=tracer_provider, trace_layers=trace_layers)
        _finish(root, built.model, probe)
    return built.model


def create_model(
    cfg: Config,
    *,
    nc: int | None = None,
    ch: int | None = None,
    anchors: Sequence[Sequence[float]] | int | None = None,
    imgsz: int = 640,
    device: str | torch.device = "cpu",
    amp_check: AmpPolicy | str = AmpPolicy.AUTO,
    image: ImageSource = None,
    fuse_layers: bool = False,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
    flops: Sequence[str] | None = None,
) -> CreatedModel:
    """Steps 1–4 in upstream's order: build, stride probe and info profile on the CPU, then move to
    ``device`` and run the AMP check there (policy ``amp_check``, on ``image`` or the default picture).
    With ``fuse_layers`` step 5 follows inside the same ``model.init`` span, as for inference.

    Arguments are checked before anything is built: a bad device, policy or image raises a
    `yolospan.errors.UserError` at once. ``flops=("thop", "torch")`` also counts every traced
    forward's FLOPs with PyTorch's FlopCounterMode (see `yolospan.tracing.flop_methods`).
    """
    target = resolve_device(device)
    policy = AmpPolicy.parse(amp_check)
    picture = load_image(image) if image is not None else None  # a bad image fails before the build
    check_imgsz(imgsz)
    spec = load_spec(cfg, nc=nc, anchors=anchors, ch=ch)
    check_model(spec, (imgsz,))
    counting = nullcontext() if flops is None else flop_methods(_flop_methods(flops))
    with counting, span(A.SPAN_MODEL_INIT, tracer_provider=tracer_provider) as root:
        built = _build(spec, root)
        model = built.model
        probe = stride_probe(model, tracer_provider=tracer_provider, trace_layers=trace_layers)
        profile = info_profile(model, imgsz=imgsz, tracer_provider=tracer_provider, trace_layers=trace_layers)
        model.to(target)
        amp = _amp.amp_check(
            model, policy=policy, image=picture, tracer_provider=tracer_provider, trace_layers=trace_layers
        )
        fused = (
            fuse(model, imgsz=imgsz, tracer_provider=tracer_provider, trace_layers=trace_layers)
            if fuse_layers
            else None
        )
        _finish(root, model, probe)
    return CreatedModel(model, built, probe, profile, amp, fused)


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; asking for a GPU that is not there is a user error."""
    text = str(device).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise UserError(f"invalid device {str(device)!r}: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"device {text!r} was asked for but CUDA is not available on this machine")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"device {text!r} does not exist: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


# --- helpers ------------------------------------------------------------------------------------


def _flop_methods(flops: Sequence[str]) -> Sequence[str]:
    from yolospan.tracing._torch_flops import parse_methods

    try:
        return parse_methods(flops)
    except ValueError as error:
        raise UserError(str(error)) from None


def _build(spec: ModelSpec, root: Span) -> BuildResult:
    if root.is_recording():
        root.set_attributes({A.MODEL_NAME: spec.name, A.MODEL_NC: spec.nc, A.MODEL_LAYERS: len(spec.layers)})
    return build(spec)


def _finish(root: Span, model: DetectionModel, probe: StrideProbeResult) -> None:
    if root.is_recording():
        root.set_attributes(
            {
                A.MODEL_PARAMS: sum(p.numel() for p in model.parameters()),
                A.MODEL_STRIDE: [int(s) for s in probe.strides],
            }
        )
