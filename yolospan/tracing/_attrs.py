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


_DTYPE_NAMES: dict[torch.dtype, str] = {}


def dtype_name(dtype: torch.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def tensors_in(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> list[torch.Tensor]:
    """`iter_tensors` over positional then keyword arguments, with a fast path for one tensor argument."""
    if not kwargs:
        if len(args) == 1 and type(args[0]) is torch.Tensor:
            return [args[0]]
        return list(iter_tensors(args))
    return [*iter_tensors(args), *iter_tensors(kwargs)]


def signature(tensors: list[torch.Tensor], training: bool) -> tuple[Any, ...]:
    """What a call's input attributes and FLOPs depend on: shapes, dtypes, device, mode, autocast."""
    if not tensors:
        return (training,)
    device = tensors[0].device
    amp = autocast_dtype(device)
    if len(tensors) == 1:
        first = tensors[0]
        return (training, device, amp, (first.shape, first.dtype))
    return (training, device, amp, *[(t.shape, t.dtype) for t in tensors])


_DEVICE_TYPES: dict[torch.device, str] = {}


def autocast_dtype(device: torch.device) -> str | None:
    # ``device.type`` builds a new string on every call; in a hook between convolutions that is
    # several microseconds, so the type of each device seen is kept.
    kind = _DEVICE_TYPES.get(device)
    if kind is None:
        kind = _DEVICE_TYPES[device] = device.type
    try:
        enabled = torch.is_autocast_enabled(kind)
    except RuntimeError:  # device types without autocast support (meta, ...)
        return None
    if not enabled:
        return None
    return dtype_name(torch.get_autocast_dtype(kind))


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


_OUTPUT_SHAPE_KEYS = tuple(A.output_shape_key(i) for i in range(A.MAX_INDEXED))
OUTPUT_KEYS = frozenset((A.OUTPUT_COUNT, A.OUTPUT_DTYPE, *_OUTPUT_SHAPE_KEYS))
"""The keys `add_output_attributes` may write."""


class OutputSignature:
    """What a call's output attributes depend on: each output tensor's shape and dtype, in
    `iter_tensors` order. A learned call checks every later call's output against it (`matches`),
    so one tensor is compared field by field and nothing walks the output with a generator."""

    __slots__ = ("dtype", "shape", "tensors")

    def __init__(self, output: Any) -> None:
        self.shape: Any = None
        self.dtype: Any = None
        self.tensors: list[Any] | None = None  # (shape, dtype) of each tensor: not one tensor
        if type(output) is torch.Tensor:
            self.shape, self.dtype = output.shape, output.dtype
        else:
            self.tensors = _output_tensors(output)

    def matches(self, output: Any) -> bool:
        """Whether ``output`` has the same signature (so the same output attributes)."""
        if self.tensors is None:
            return type(output) is torch.Tensor and output.shape == self.shape and output.dtype is self.dtype
        return type(output) is not torch.Tensor and _output_tensors(output) == self.tensors


def _output_tensors(output: Any) -> list[Any]:
    found: list[Any] = []
    _gather(output, found)
    return found


def _gather(value: Any, found: list[Any]) -> None:
    if isinstance(value, torch.Tensor):
        found.append((value.shape, value.dtype))
    elif isinstance(value, (tuple, list, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            _gather(item, found)


def add_output_attributes(attrs: Attributes, output: Any) -> None:
    """Add the output part of the contract to ``attrs`` (runs for every recorded call: kept lean)."""
    if type(output) is torch.Tensor:
        attrs[A.OUTPUT_COUNT] = 1
        attrs[A.OUTPUT_DTYPE] = dtype_name(output.dtype)
        attrs[_OUTPUT_SHAPE_KEYS[0]] = list(output.shape)
        return
    tensors = list(iter_tensors(output))
    attrs[A.OUTPUT_COUNT] = len(tensors)
    if tensors:
        attrs[A.OUTPUT_DTYPE] = dtype_name(tensors[0].dtype)
    for key, tensor in zip(_OUTPUT_SHAPE_KEYS, tensors, strict=False):  # capped at MAX_INDEXED
        attrs[key] = list(tensor.shape)
