"""Stage 2 of the config limits: build a spec on PyTorch's meta device and run it there.

Shapes only, no memory, no arithmetic: a row that cannot be built or run is reported by row, and
the parameter count, the largest feature map and a forward's convolution FLOPs are bounded
(`yolospan.yolo.limits` holds the limits and stage 1, the numbers in the spec).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from yolospan.yolo.builder import build_layers
from yolospan.yolo.errors import ConfigError
from yolospan.yolo.lifecycle import PROBE_SIZE
from yolospan.yolo.limits import MAX_ACTIVATION, MAX_GFLOPS, MAX_PARAMS, check_spec
from yolospan.yolo.spec import ModelSpec

__all__ = ["ModelEstimate", "check_model"]


@dataclass(frozen=True)
class ModelEstimate:
    """What `check_model` found on the meta device."""

    params: int
    largest_map: int
    """Elements of the largest tensor a layer output, at the largest size checked."""
    gflops: float
    """Convolution GFLOPs (2 × multiply-adds) of one forward at the largest size checked."""


def check_model(spec: ModelSpec, sizes: tuple[int, ...] = ()) -> ModelEstimate:
    """Build ``spec`` on the meta device and run one forward per image size (the stride probe's
    256 always); raise `ConfigError` naming the row that cannot be built or run, or the limit a
    model beyond `MAX_PARAMS`, `MAX_ACTIVATION` or `MAX_GFLOPS` exceeds. Takes milliseconds to a
    second: nothing is allocated or computed but shapes.
    """
    import torch

    check_spec(spec)
    label = spec.label
    with torch.device("meta"):
        model = build_layers(spec)
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        raise ConfigError(
            f"{label}: the model would have {params} parameters (limit {MAX_PARAMS}); "
            "lower nc, width_multiple or the channels"
        )
    largest, gflops = 0, 0.0
    for size in sorted({PROBE_SIZE, *sizes}):
        biggest, flops = _dry_forward(spec, model, size)
        largest, gflops = max(largest, biggest), max(gflops, flops / 1e9)
    return ModelEstimate(params, largest, gflops)


def _dry_forward(spec: ModelSpec, model: Any, size: int) -> tuple[int, float]:
    import torch
    from torch import nn

    flops = 0.0

    def count(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal flops
        if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            flops += 2.0 * output.numel() * per_output

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    largest = 0
    try:
        model.train()
        x: Any = torch.empty(1, spec.ch, size, size, device="meta")
        saved: list[Any] = []
        for layer, (module, (source, keep)) in zip(
            spec.layers, zip(model.model, model._plan, strict=True), strict=True
        ):
            where = f"{spec.label}: {layer.where}"
            if source != -1:
                x = saved[source] if isinstance(source, int) else [x if j == -1 else saved[j] for j in source]
            try:
                x = module(x)
            except Exception as error:  # any failure of a row is the config's doing
                raise ConfigError(
                    f"{where}: {layer.module} cannot run at {size}x{size}: {_first_line(error)}"
                ) from None
            for tensor in _tensors(x):
                if tensor.numel() == 0 or 0 in tensor.shape:
                    raise ConfigError(
                        f"{where}: {layer.module} makes an empty map {list(tensor.shape)} "
                        f"from a {size}x{size} image"
                    )
                if tensor.numel() > MAX_ACTIVATION:
                    raise ConfigError(
                        f"{where}: {layer.module} makes a map of {tensor.numel()} elements at "
                        f"{size}x{size} (limit {MAX_ACTIVATION}); lower the image size or the channels"
                    )
                largest = max(largest, tensor.numel())
            if flops / 1e9 > MAX_GFLOPS:
                raise ConfigError(
                    f"{where}: one forward at {size}x{size} needs more than {MAX_GFLOPS:g} GFLOPs "
                    "by this row; lower the image size, the channels or the kernel sizes"
                )
            saved.append(x if keep else None)
    finally:
        for handle in handles:
            handle.remove()
    return largest, flops


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."
