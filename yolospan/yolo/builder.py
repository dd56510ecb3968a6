"""Spec → modules: upstream's ``parse_model`` rules, applied to a validated `ModelSpec`.

Depth and width scaling, channel bookkeeping and the save list follow upstream exactly, so a
config yields upstream's layers, parameter count and module tree.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from yolospan.yolo.blocks import Conv
from yolospan.yolo.errors import ConfigError
from yolospan.yolo.model import DetectionModel, Route, SegmentationModel
from yolospan.yolo.registry import Role
from yolospan.yolo.spec import LayerSpec, ModelSpec

__all__ = ["build_layers", "make_divisible", "scaled_depth"]


def make_divisible(value: float, divisor: int) -> int:
    """The smallest multiple of ``divisor`` that is >= ``value`` (upstream's channel rounding)."""
    return math.ceil(value / divisor) * divisor


def scaled_depth(number: int, depth_multiple: float) -> int:
    """Repeats after depth scaling; Python's round (half to even) as upstream uses it."""
    return max(round(number * depth_multiple), 1) if number > 1 else number


def build_layers(spec: ModelSpec) -> DetectionModel:
    """Build the model's layers from ``spec`` with PyTorch's default initialisation; nothing runs."""
    outputs_per_level = spec.anchors_per_level * (spec.nc + 5)
    channels: list[int] = []  # output channels of each built layer
    layers: list[nn.Module] = []
    routes: list[Route] = []
    saved: set[int] = set()
    for layer in spec.layers:
        inputs = [spec.ch if (j == -1 and layer.index == 0) else channels[j] for j in layer.sources]
        try:
            module, out_ch = _build_layer(spec, layer, inputs, outputs_per_level)
        except (ValueError, RuntimeError, TypeError, ZeroDivisionError, OverflowError) as error:
            # e.g. groups that do not divide the channels: the module's own check, reported by row
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ConfigError(
                f"{spec.label}: {layer.where}: {layer.module} cannot be built: {reason}"
            ) from None
        layers.append(module)
        routes.append(Route(layer.sources if layer.multi_source else layer.sources[0], layer.entry.type_name))
        saved.update(j % layer.index for j in layer.sources if j != -1)
        channels.append(out_ch)
    _share_activation(layers, spec.activation.make() if spec.activation is not None else nn.SiLU())
    model_class = SegmentationModel if spec.head.module == "Segment" else DetectionModel
    return model_class(spec, layers, routes, saved)


def _build_layer(
    spec: ModelSpec, layer: LayerSpec, inputs: list[int], outputs_per_level: int
) -> tuple[nn.Module, int]:
    entry = layer.entry
    kwargs: dict[str, Any] = {
        param.name: value for param, value in zip(entry.params, layer.args, strict=False)
    }
    repeats = scaled_depth(layer.number, spec.depth_multiple)
    if entry.role in (Role.CONV, Role.CSP):
        out_ch = kwargs["out_ch"]
        if out_ch != outputs_per_level:  # upstream leaves a layer sized like the head's output unscaled
            out_ch = make_divisible(out_ch * spec.width_multiple, 8)
        kwargs.update(in_ch=inputs[0], out_ch=out_ch)
        if entry.role is Role.CSP:
            kwargs["repeats"] = repeats
            repeats = 1
        elif repeats > 1 and inputs[0] != out_ch:
            raise ConfigError(
                f"{spec.label}: {layer.where}: {entry.name} repeated {repeats} times needs "
                f"in_ch == out_ch, got {inputs[0]} -> {out_ch}"
            )
    elif entry.role is Role.CONCAT:
        out_ch = sum(inputs)
    elif entry.role is Role.HEAD:
        out_ch = 0  # nothing reads the head
        anchors = kwargs["anchors"]
        if isinstance(anchors, int):  # a count: placeholders the stride probe divides like real ones
            kwargs["anchors"] = [list(range(anchors * 2))] * len(inputs)
        kwargs["in_channels"] = inputs
        if entry.name == "Segment":  # prototype channels scale with width, as upstream's parse_model does
            kwargs["protos"] = make_divisible(kwargs.get("protos", 256) * spec.width_multiple, 8)
    else:
        out_ch = inputs[0]
    if repeats > 1:
        return nn.Sequential(*(entry.factory(**kwargs) for _ in range(repeats))), out_ch
    return entry.factory(**kwargs), out_ch


def _share_activation(layers: list[nn.Module], shared: nn.Module) -> None:
    """One activation instance for every Conv built with ``act=True`` (a SiLU placeholder), as upstream's
    class-level default, so the module tree counts it once; but this model's own instance, so a
    config's ``activation:`` reaches no other model."""
    for layer in layers:
        for module in layer.modules():
            if isinstance(module, Conv) and isinstance(module.act, nn.SiLU):
                module.act = shared
