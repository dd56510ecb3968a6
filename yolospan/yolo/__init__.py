"""YOLOv5 from YAML configs, faithful to upstream, with model creation as explicit lifecycle steps.

Steps: `build` → `stride_probe` → `info_profile` → `amp_check` (and optionally `fuse`);
`build_model` runs 1–2 and `create_model` runs 1–4, each under one ``model.init`` span.
"""

from __future__ import annotations

from yolospan.yolo.amp import AmpCheckResult, AmpPolicy, AmpVerdict, amp_check
from yolospan.yolo.configs import shipped_configs
from yolospan.yolo.create import CreatedModel, build_model, create_model, resolve_device
from yolospan.yolo.errors import ConfigError, ImageError
from yolospan.yolo.images import default_image, load_image, prepare_image
from yolospan.yolo.lifecycle import (
    BuildResult,
    FuseResult,
    InfoProfileResult,
    StrideProbeResult,
    build,
    fuse,
    info_profile,
    stride_probe,
)
from yolospan.yolo.model import DetectionModel, SegmentationModel
from yolospan.yolo.spec import LayerSpec, ModelSpec, load_spec
from yolospan.yolo.weights import CheckpointWeights, LoadedWeights, WeightsError, load_weights, read_weights

__all__ = [
    "AmpCheckResult",
    "AmpPolicy",
    "AmpVerdict",
    "BuildResult",
    "CheckpointWeights",
    "ConfigError",
    "CreatedModel",
    "DetectionModel",
    "FuseResult",
    "ImageError",
    "InfoProfileResult",
    "LayerSpec",
    "LoadedWeights",
    "ModelSpec",
    "SegmentationModel",
    "StrideProbeResult",
    "WeightsError",
    "amp_check",
    "build",
    "build_model",
    "create_model",
    "default_image",
    "fuse",
    "info_profile",
    "load_image",
    "load_spec",
    "load_weights",
    "prepare_image",
    "read_weights",
    "resolve_device",
    "shipped_configs",
    "stride_probe",
]
