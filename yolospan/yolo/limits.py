"""What a model config may ask for, checked before anything real is built or run.

Two stages, both generic over module kinds (they read the registry's parameter names and the
built modules, never a list of classes):

1. `check_spec` bounds the numbers a validated `ModelSpec` holds: ``nc``, the multiples, layer
   and repeat counts, anchors, and each argument by its parameter name (``out_ch`` after width
   scaling, ``kernel``, ``stride``, ``scale_factor``, ...; any other integer or number has a
   generous bound of its own).
2. `yolospan.yolo.dry_run.check_model` builds the layers on PyTorch's ``meta`` device (shapes
   only, no memory, no arithmetic) and runs one forward there at each image size the run will
   use. A row that cannot be built or cannot run (``groups`` not dividing the channels, a Concat
   of maps of different sizes, a map that shrinks to nothing) is reported by row; the parameter
   count, the largest feature map and the convolution FLOPs of a forward are bounded.

docs/limits.md states these limits for users; `LIMITS` lists them for the docs test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final, Protocol

from yolospan.yolo.errors import ConfigError

__all__ = [
    "LIMITS",
    "MAX_ACTIVATION",
    "MAX_ANCHORS",
    "MAX_CHANNELS",
    "MAX_GFLOPS",
    "MAX_IMGSZ",
    "MAX_LAYERS",
    "MAX_MULTIPLE",
    "MAX_NC",
    "MAX_PARAMS",
    "MAX_REPEATS",
    "SpecNumbers",
    "check_spec",
]

MAX_NC: Final = 10_000
"""Classes a model may have (the config's ``nc`` or an override such as ``--nc``)."""
MAX_MULTIPLE: Final = 16.0
"""Largest ``depth_multiple`` and ``width_multiple`` (yolov5x uses 1.33 and 1.25)."""
MAX_LAYERS: Final = 512
"""Rows in backbone + head."""
MAX_REPEATS: Final = 64
"""Repeats of one row after depth scaling."""
MAX_CHANNELS: Final = 16_384
"""Output channels of one layer after width scaling (also bounds ``groups``)."""
MAX_ANCHORS: Final = 64
"""Anchors per detection level."""
MAX_ANCHOR_SIZE: Final = 100_000.0
"""Largest anchor width or height, in pixels."""
MAX_IMGSZ: Final = 8192
"""Largest image size (``--imgsz``)."""
MAX_PARAMS: Final = 200_000_000
"""Parameters of the whole model (yolov5x has 86.7 million)."""
MAX_ACTIVATION: Final = 1 << 28
"""Elements of the largest feature map one forward of one image makes (1 GiB in float32)."""
MAX_GFLOPS: Final = 2000.0
"""Convolution GFLOPs of one forward of one image (yolov5x at 1280 needs about 820)."""

_ARGUMENT_LIMITS: Final[dict[str, tuple[float, float]]] = {
    "kernel": (1, 31),
    "stride": (1, 32),
    "dilation": (1, 16),
    "padding": (0, 64),
    "groups": (1, MAX_CHANNELS),
    "size": (1, MAX_IMGSZ),
    "scale_factor": (1 / 32, 32),
    "masks": (1, 1024),
    "protos": (1, MAX_CHANNELS),
    "nc": (1, MAX_NC),
    "expansion": (1 / 64, 64),
    "dim": (-8, 8),
}
"""Bounds of arguments by their registry parameter name; ``out_ch`` is bounded after scaling."""
_ANY_INTEGER: Final = 65_536
_ANY_NUMBER: Final = 1e6
_ANY_LIST: Final = 1024

LIMITS: Final[dict[str, object]] = {
    "nc": MAX_NC,
    "depth_multiple, width_multiple": MAX_MULTIPLE,
    "layers": MAX_LAYERS,
    "repeats": MAX_REPEATS,
    "channels": MAX_CHANNELS,
    "anchors per level": MAX_ANCHORS,
    "anchor size": MAX_ANCHOR_SIZE,
    "imgsz": MAX_IMGSZ,
    "parameters": MAX_PARAMS,
    "feature map elements": MAX_ACTIVATION,
    "GFLOPs": MAX_GFLOPS,
    **{f"argument {name}": bounds for name, bounds in _ARGUMENT_LIMITS.items()},
}
"""Every limit by the name docs/limits.md gives it."""


# --- stage 1: the numbers in the spec ------------------------------------------------------------


class SpecNumbers(Protocol):
    """What `check_spec` reads of a `yolospan.yolo.spec.ModelSpec` (which calls it while it is
    validated, so this module does not import it back)."""

    @property
    def label(self) -> str: ...
    @property
    def nc(self) -> int: ...
    @property
    def depth_multiple(self) -> float: ...
    @property
    def width_multiple(self) -> float: ...
    @property
    def anchors(self) -> Any: ...
    @property
    def layers(self) -> Sequence[Any]: ...


def check_spec(spec: SpecNumbers) -> None:
    """Raise `ConfigError` naming the config (and the row) when a number is beyond its limit."""
    label = spec.label
    if spec.nc > MAX_NC:
        raise ConfigError(f"{label}: nc {spec.nc} is above the limit of {MAX_NC} classes")
    for name, value in (("depth_multiple", spec.depth_multiple), ("width_multiple", spec.width_multiple)):
        if value > MAX_MULTIPLE:
            raise ConfigError(f"{label}: {name} {value:g} is above the limit of {MAX_MULTIPLE:g}")
    if len(spec.layers) > MAX_LAYERS:
        raise ConfigError(f"{label}: {len(spec.layers)} rows is above the limit of {MAX_LAYERS}")
    _check_anchors(label, "anchors", spec.anchors)
    for layer in spec.layers:
        where = f"{label}: {layer.where}"
        repeats = max(round(layer.number * spec.depth_multiple), 1) if layer.number > 1 else 1
        if repeats > MAX_REPEATS:
            raise ConfigError(
                f"{where}: {layer.module} repeated {repeats} times after depth_multiple (limit {MAX_REPEATS})"
            )
        for param, value in zip(layer.entry.params, layer.args, strict=False):
            _check_argument(where, layer.module, param.name, value, spec.width_multiple)


def _check_argument(where: str, module: str, name: str, value: Any, width: float) -> None:
    what = f"{where}: {module} {name}"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, tuple):
        if name == "anchors":
            _check_anchors(where, f"{module} anchors", value)
        elif len(value) > _ANY_LIST:
            raise ConfigError(f"{what} has {len(value)} items (limit {_ANY_LIST})")
        return
    if not isinstance(value, (int, float)):
        return
    if name == "out_ch":
        scaled = math.ceil(value * width / 8) * 8 if value * width < 2 * MAX_CHANNELS else math.inf
        if value > MAX_CHANNELS or scaled > MAX_CHANNELS:
            raise ConfigError(
                f"{what} {_number(value)} gives more than {MAX_CHANNELS} channels after width_multiple"
            )
        return
    if name == "anchors":  # an anchor count
        if value > MAX_ANCHORS:
            raise ConfigError(f"{what}: {value} anchors per level is above the limit of {MAX_ANCHORS}")
        return
    generic = (-_ANY_INTEGER, _ANY_INTEGER) if isinstance(value, int) else (-_ANY_NUMBER, _ANY_NUMBER)
    low, high = _ARGUMENT_LIMITS.get(name, generic)
    if not low <= value <= high:
        raise ConfigError(f"{what} {_number(value)} is outside the limits {_number(low)}..{_number(high)}")


def _check_anchors(label: str, what: str, anchors: object) -> None:
    if isinstance(anchors, int):
        if anchors > MAX_ANCHORS:
            raise ConfigError(
                f"{label}: {what}: {anchors} anchors per level is above the limit of {MAX_ANCHORS}"
            )
        return
    if not isinstance(anchors, tuple):
        return
    if len(anchors) > MAX_LAYERS:
        raise ConfigError(f"{label}: {what}: {len(anchors)} levels is above the limit of {MAX_LAYERS}")
    for number, level in enumerate(anchors):
        if isinstance(level, tuple) and len(level) // 2 > MAX_ANCHORS:
            raise ConfigError(
                f"{label}: {what}: level {number} has {len(level) // 2} anchors (limit {MAX_ANCHORS})"
            )
        if isinstance(level, tuple) and any(
            isinstance(x, (int, float)) and x > MAX_ANCHOR_SIZE for x in level
        ):
            raise ConfigError(f"{label}: {what}: level {number} has a size above {MAX_ANCHOR_SIZE:g} pixels")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
