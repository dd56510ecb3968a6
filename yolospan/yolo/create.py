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
from yolospan.yolo.dry_run import check_model
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
from yolospan.yolo.model import DetectionModel
from yolospan.yolo.spec import ModelSpec, load_spec
from yolospan.yolo.weights import (
    CheckpointWeights,
    LoadedWeights,
    WeightsFile,
    load_weights,
    read_weights,
    weights_attributes,
)

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
    weights: LoadedWeights | None = None
    """The weights loaded after the profile; None means PyTorch's random initialisation."""


def build_model(
    cfg: Config,
    nc: int | None = None,
    ch: int | None = None,
    *,
    anchors: Sequence[Sequence[float]] | int | None = None,
    weights: str | os.PathLike[str] | None = None,
    checkpoint_weights: CheckpointWeights | str = CheckpointWeights.EMA,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
) -> DetectionModel:
    """A model built and stride-probed on the CPU (steps 1–2): upstream's ``Model(cfg)`` minus its profile.

    ``ch`` (input channels) defaults to the config's ``ch``, then 3; ``nc`` and ``anchors``
    override the config's. ``weights`` (a yolospan checkpoint or a state dict; see
    `yolospan.yolo.weights`) are loaded after the probe, a checkpoint's ``checkpoint_weights`` entry.
    """
    file = _read(weights, checkpoint_weights)
    spec = load_spec(cfg, nc=_nc(nc, file), anchors=anchors, ch=ch)  # a bad config fails before any span
    check_model(spec)  # as does one that cannot be built or run, or is beyond the limits
    with span(A.SPAN_MODEL_INIT, tracer_provider=tracer_provider) as root:
        built = _build(spec, root)
        probe = stride_probe(built.model, tracer_provider=tracer_provider, trace_layers=trace_layers)
        _load(root, built.model, file)
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
    weights: str | os.PathLike[str] | None = None,
    checkpoint_weights: CheckpointWeights | str = CheckpointWeights.EMA,
    tracer_provider: TracerProvider | None = None,
    trace_layers: bool = False,
    flops: Sequence[str] | None = None,
) -> CreatedModel:
    """Steps 1–4 in upstream's order: build, stride probe and info profile on the CPU, then move to
    ``device`` and run the AMP check there (policy ``amp_check``, on ``image`` or the default picture).
    With ``fuse_layers`` step 5 follows inside the same ``model.init`` span, as for inference.

    ``weights`` (a yolospan checkpoint, its EMA weights unless ``checkpoint_weights`` is ``model``,
    or a plain state dict) are loaded after the profile, before the AMP check, as upstream's
    training script loads pretrained weights; a checkpoint's ``nc`` is used unless ``nc`` is given.

    Arguments are checked before anything is built: a bad device, policy, image or weights file
    raises a `yolospan.errors.UserError` at once. ``flops=("thop", "torch")`` also counts every
    traced forward's FLOPs with PyTorch's FlopCounterMode (see `yolospan.tracing.flop_methods`).
    """
    target = resolve_device(device)
    policy = AmpPolicy.parse(amp_check)
    picture = load_image(image) if image is not None else None  # a bad image fails before the build
    check_imgsz(imgsz)
    file = _read(weights, checkpoint_weights)
    spec = load_spec(cfg, nc=_nc(nc, file), anchors=anchors, ch=ch)
    check_model(spec, (imgsz,))
    counting = nullcontext() if flops is None else flop_methods(_flop_methods(flops))
    with counting, span(A.SPAN_MODEL_INIT, tracer_provider=tracer_provider) as root:
        built = _build(spec, root)
        model = built.model
        probe = stride_probe(model, tracer_provider=tracer_provider, trace_layers=trace_layers)
        profile = info_profile(model, imgsz=imgsz, tracer_provider=tracer_provider, trace_layers=trace_layers)
        loaded = _load(root, model, file)
        model.to(target)
        amp = _amp.amp_check(
            model,
            policy=policy,
            image=picture,
            weights=loaded,
            tracer_provider=tracer_provider,
            trace_layers=trace_layers,
        )
        fused = (
            fuse(model, imgsz=imgsz, tracer_provider=tracer_provider, trace_layers=trace_layers)
            if fuse_layers
            else None
        )
        _finish(root, model, probe)
    return CreatedModel(model, built, probe, profile, amp, fused, loaded)


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


def _read(weights: str | os.PathLike[str] | None, which: CheckpointWeights | str) -> WeightsFile | None:
    CheckpointWeights.parse(which)  # a bad choice is reported even without a file
    return read_weights(weights, checkpoint_weights=which) if weights is not None else None


def _nc(nc: int | None, file: WeightsFile | None) -> int | None:
    """The caller's nc, else the one a checkpoint was trained with (else the config's)."""
    return nc if nc is not None or file is None else file.nc


def _load(root: Span, model: DetectionModel, file: WeightsFile | None) -> LoadedWeights | None:
    loaded = load_weights(model, file) if file is not None else None
    if root.is_recording():
        root.set_attributes(weights_attributes(loaded))
    return loaded


def _finish(root: Span, model: DetectionModel, probe: StrideProbeResult) -> None:
    if root.is_recording():
        root.set_attributes(
            {
                A.MODEL_PARAMS: sum(p.numel() for p in model.parameters()),
                A.MODEL_STRIDE: [int(s) for s in probe.strides],
            }
        )
