"""Pure functions from a module call to span attributes (the span contract's forward part)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A

Attributes = dict[str, AttributeValue]


def iter_tensors(value: Any) -> Iterator[torch.Tensor]:
    """Tensors in ``value`` depth-first, in order: Detect's ``(pred, [p3, p4, p5])`` yields 4."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from iter_tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_tensors(item)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def signature(tensors: list[torch.Tensor], training: bool) -> tuple[Any, ...]:
    """What a call's FLOPs depend on: the shapes and dtypes of its tensors, and train/eval mode."""
    return (training, *[(t.shape, t.dtype) for t in tensors])


def autocast_dtype(device: torch.device) -> str | None:
    try:
        enabled = torch.is_autocast_enabled(device.type)
    except RuntimeError:  # device types without autocast support (meta, ...)
        return None
    if not enabled:
        return None
    return dtype_name(torch.get_autocast_dtype(device.type))


def input_attributes(inputs: list[torch.Tensor], training: bool) -> Attributes:
    attrs: Attributes = {A.TRAINING: training, A.INPUT_COUNT: len(inputs)}
    if not inputs:
        return attrs
    first = inputs[0]
    attrs[A.INPUT_SHAPE] = list(first.shape)
    attrs[A.INPUT_DTYPE] = dtype_name(first.dtype)
    attrs[A.DEVICE] = str(first.device)
    amp = autocast_dtype(first.device)
    if amp is not None:
        attrs[A.AUTOCAST] = amp
    if len(inputs) > 1:
        for index, tensor in enumerate(inputs[: A.MAX_INDEXED]):
            attrs[A.input_shape_key(index)] = list(tensor.shape)
    return attrs


def output_attributes(output: Any) -> Attributes:
    tensors = list(iter_tensors(output))
    attrs: Attributes = {A.OUTPUT_COUNT: len(tensors)}
    if tensors:
        attrs[A.OUTPUT_DTYPE] = dtype_name(tensors[0].dtype)
    for index, tensor in enumerate(tensors[: A.MAX_INDEXED]):
        attrs[A.output_shape_key(index)] = list(tensor.shape)
    return attrs
