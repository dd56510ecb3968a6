"""A config as frozen, validated spec objects: everything is checked before a single layer is built.

Arguments resolve through a closed set of symbols (``nc``, ``anchors``, ``'nearest'``, ``None``),
numbers, booleans and lists of numbers; module names through `yolospan.yolo.registry`. Each
problem is reported as one line naming the config, the row and what is wrong.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from yolospan.yolo.activation import Activation, parse_activation
from yolospan.yolo.configs import RawConfig, read_config
from yolospan.yolo.errors import ConfigError
from yolospan.yolo.limits import MAX_NC, check_spec
from yolospan.yolo.registry import REGISTRY, ModuleEntry, Role, lookup

__all__ = ["Anchors", "LayerSpec", "ModelSpec", "load_spec", "parse_spec"]

Anchors = tuple[tuple[float, ...], ...] | int
"""Anchor (w, h) pairs in pixels per detection level, or a count of anchors per level."""

_REQUIRED_KEYS = ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head")
_OPTIONAL_KEYS = ("ch", "inplace", "activation")  # inplace: upstream's configs may carry it; v7 ignores it
_SYMBOLS = "nc, anchors, 'nearest', None"


@dataclass(frozen=True)
class LayerSpec:
    """One ``[from, number, module, args]`` row, with its symbols resolved and its arguments checked."""

    index: int  # position in backbone + head: the layer's ``i``
    section: str  # "backbone" or "head"
    row: int  # position inside the section, as a reader counts it (from 0)
    sources: tuple[int, ...]  # the ``from`` column as a tuple; -1 is the previous layer (or the input)
    multi_source: bool  # ``from`` was a list (Concat, heads)
    number: int  # repeats before depth_multiple
    module: str  # registry name, e.g. "C3" or "nn.Upsample"
    args: tuple[Any, ...]

    @property
    def entry(self) -> ModuleEntry:
        return REGISTRY[self.module]

    @property
    def where(self) -> str:
        return f"{self.section} row {self.row} (layer {self.index})"


@dataclass(frozen=True)
class ModelSpec:
    """A validated model config; `yolospan.yolo.builder.build_layers` turns it into modules."""

    name: str
    label: str
    nc: int
    depth_multiple: float
    width_multiple: float
    anchors: Anchors
    ch: int
    layers: tuple[LayerSpec, ...]
    activation: Activation | None = None  # the ``activation:`` key: this model's convs only; None is SiLU

    @property
    def anchors_per_level(self) -> int:
        return self.anchors if isinstance(self.anchors, int) else len(self.anchors[0]) // 2

    @property
    def head(self) -> LayerSpec:
        return self.layers[-1]


def load_spec(
    cfg: str | os.PathLike[str] | Mapping[str, Any],
    *,
    nc: int | None = None,
    anchors: Sequence[Sequence[float]] | int | None = None,
    ch: int | None = None,
) -> ModelSpec:
    """Read a shipped name, a YAML path or a dict, apply the caller's overrides and validate it all.

    ``ch`` (input channels) defaults to the config's ``ch`` key, then 3.
    """
    raw = RawConfig("model", "<dict>", dict(cfg)) if isinstance(cfg, Mapping) else read_config(cfg)
    return parse_spec(raw, nc=nc, anchors=anchors, ch=ch)


def parse_spec(
    raw: RawConfig,
    *,
    nc: int | None = None,
    anchors: Sequence[Sequence[float]] | int | None = None,
    ch: int | None = None,
) -> ModelSpec:
    label = raw.label
    data = raw.data
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{label}: a model config must be a YAML mapping with keys {', '.join(_REQUIRED_KEYS)}, "
            f"got {_kind(data)}"
        )
    _check_keys(label, data)
    spec_nc = _positive_int(f"{label}: nc", data["nc"])
    if nc is not None:
        spec_nc = _positive_int("nc override", nc)
        if spec_nc > MAX_NC:
            raise ConfigError(f"nc override {spec_nc} is above the limit of {MAX_NC} classes")
    spec_anchors = _anchors(f"{label}: anchors", data["anchors"])
    if anchors is not None:
        spec_anchors = _anchors("anchors override", anchors)
    spec_ch = _positive_int(f"{label}: ch", data.get("ch", 3))
    if ch is not None:
        spec_ch = _positive_int("ch", ch)
    if "inplace" in data and not isinstance(data["inplace"], bool):
        raise ConfigError(f"{label}: inplace must be true or false, got {data['inplace']!r}")
    rows = _rows(label, "backbone", data["backbone"]) + _rows(label, "head", data["head"])
    layers = tuple(
        _layer(label, index, section, row, values, spec_nc, spec_anchors)
        for index, (section, row, values) in enumerate(rows)
    )
    _check_head(label, layers, spec_anchors)
    spec = ModelSpec(
        name=raw.name,
        label=label,
        nc=spec_nc,
        depth_multiple=_positive_number(f"{label}: depth_multiple", data["depth_multiple"]),
        width_multiple=_positive_number(f"{label}: width_multiple", data["width_multiple"]),
        anchors=spec_anchors,
        ch=spec_ch,
        layers=layers,
        activation=parse_activation(f"{label}: activation", data["activation"])
        if "activation" in data
        else None,
    )
    check_spec(spec)  # the numbers within yolospan's limits (see docs/limits.md)
    return spec


# --- top level --------------------------------------------------------------------------------


def _check_keys(label: str, data: Mapping[Any, Any]) -> None:
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{label}: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key in data:
        if key not in _REQUIRED_KEYS and key not in _OPTIONAL_KEYS:
            allowed = ", ".join(_REQUIRED_KEYS + _OPTIONAL_KEYS)
            raise ConfigError(f"{label}: unknown key {_show(key)} (allowed: {allowed})")


def _rows(label: str, section: str, value: object) -> list[tuple[str, int, object]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{label}: {section} must be a non-empty list of [from, number, module, args] rows")
    return [(section, row, item) for row, item in enumerate(value)]


def _anchors(what: str, value: object) -> Anchors:
    if _is_int(value):
        return _positive_int(what, value)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"{what} must be a list of levels of w,h pairs or an anchor count, got {_show(value)}"
        )
    levels: list[tuple[float, ...]] = []
    for number, level in enumerate(value):
        if not isinstance(level, (list, tuple)) or not level:
            raise ConfigError(f"{what}: level {number} must be a list of w,h numbers, got {_show(level)}")
        if len(level) % 2:
            raise ConfigError(
                f"{what}: level {number} has {len(level)} numbers; w,h pairs need an even count"
            )
        if not all(_is_number(x) and x > 0 for x in level):
            raise ConfigError(f"{what}: level {number} must hold numbers > 0, got {_show(level)}")
        if levels and len(level) != len(levels[0]):
            raise ConfigError(
                f"{what}: level {number} has {len(level) // 2} anchors but level 0 has "
                f"{len(levels[0]) // 2}; every level needs the same count"
            )
        levels.append(tuple(level))
    return tuple(levels)


def _check_head(label: str, layers: tuple[LayerSpec, ...], anchors: Anchors) -> None:
    for layer in layers[:-1]:
        if layer.entry.role is Role.HEAD:
            raise ConfigError(f"{label}: {layer.where}: {layer.module} must be the last row")
    head = layers[-1]
    if head.entry.role is not Role.HEAD:
        raise ConfigError(f"{label}: {head.where}: the last row must be Detect or Segment, got {head.module}")
    head_anchors = head.args[1]
    if isinstance(head_anchors, tuple):
        checked = _anchors(f"{label}: {head.where}: {head.module} anchors", head_anchors)
        assert isinstance(checked, tuple)
        if len(checked) != len(head.sources):
            raise ConfigError(
                f"{label}: {head.where}: {head.module} reads {len(head.sources)} layers "
                f"but its anchors have {len(checked)} levels"
            )


# --- rows -------------------------------------------------------------------------------------


def _layer(
    label: str, index: int, section: str, row: int, values: object, nc: int, anchors: Anchors
) -> LayerSpec:
    where = f"{label}: {section} row {row} (layer {index})"
    if not isinstance(values, list) or len(values) != 4:
        raise ConfigError(f"{where}: a row must be [from, number, module, args], got {_show(values)}")
    source, number, module, args = values
    if not isinstance(module, str):
        raise ConfigError(f"{where}: module must be a name such as Conv, got {_show(module)}")
    entry = lookup(module)
    if entry is None:
        raise ConfigError(f"{where}: unknown module {_show(module)} (known: {', '.join(sorted(REGISTRY))})")
    sources, multi = _sources(where, index, source)
    if entry.role in (Role.CONCAT, Role.HEAD) and not multi:
        raise ConfigError(f"{where}: {module} reads several layers: from must be a list, got {_show(source)}")
    if entry.role not in (Role.CONCAT, Role.HEAD) and multi:
        raise ConfigError(f"{where}: {module} reads one layer: from must be an integer, got {_show(source)}")
    if not _is_int(number) or number < 1:
        raise ConfigError(f"{where}: number must be an integer >= 1, got {_show(number)}")
    if number > 1 and entry.role in (Role.CONCAT, Role.HEAD):
        raise ConfigError(f"{where}: {module} cannot be repeated (number must be 1, got {number})")
    if not isinstance(args, list):
        raise ConfigError(f"{where}: args must be a list, got {_show(args)}")
    resolved = tuple(_argument(where, position, value, nc, anchors) for position, value in enumerate(args))
    _check_arguments(where, entry, resolved)
    return LayerSpec(index, section, row, sources, multi, number, module, resolved)


def _sources(where: str, index: int, value: object) -> tuple[tuple[int, ...], bool]:
    multi = isinstance(value, list)
    items = value if isinstance(value, list) else [value]
    if multi and not items:
        raise ConfigError(f"{where}: from must not be an empty list")
    for item in items:
        if not _is_int(item):
            raise ConfigError(f"{where}: from must be an integer or a list of integers, got {_show(value)}")
        if item != -1 and not -index <= item < index:
            readable = "the input (-1)" if index == 0 else f"layers 0..{index - 1}, -1..-{index}"
            raise ConfigError(f"{where}: from index {item} is out of range (this row can read {readable})")
    return tuple(items), multi


def _argument(where: str, position: int, value: object, nc: int, anchors: Anchors) -> Any:
    if isinstance(value, str):
        symbols: dict[str, Any] = {"nc": nc, "anchors": anchors, "None": None, "nearest": "nearest"}
        if value in symbols:
            return symbols[value]
        raise ConfigError(f"{where}: argument {position} {_show(value)} is not a known symbol ({_SYMBOLS})")
    if value is None or isinstance(value, bool) or _is_number(value):
        return value
    if isinstance(value, list) and all(
        _is_number(x) or (isinstance(x, list) and all(_is_number(y) for y in x)) for x in value
    ):
        return tuple(tuple(x) if isinstance(x, list) else x for x in value)
    raise ConfigError(
        f"{where}: argument {position} must be a number, a boolean, {_SYMBOLS} or a list of numbers, "
        f"got {_show(value)}"
    )


def _check_arguments(where: str, entry: ModuleEntry, args: tuple[Any, ...]) -> None:
    required = sum(p.required for p in entry.params)
    if not required <= len(args) <= len(entry.params):
        count = str(required) if required == len(entry.params) else f"{required} to {len(entry.params)}"
        raise ConfigError(
            f"{where}: {entry.name} takes {count} argument{'s' if len(entry.params) > 1 else ''} "
            f"{entry.signature}, got {len(args)}"
        )
    for position, (param, value) in enumerate(zip(entry.params, args, strict=False)):
        if not param.accepts(value):
            raise ConfigError(
                f"{where}: argument {position} ({param.name}) of {entry.name} must be {param.expects}, "
                f"got {_show(value)}"
            )
    if entry.role is Role.RESAMPLE and args[0] is None and (len(args) < 2 or args[1] is None):
        raise ConfigError(f"{where}: {entry.name} needs a size or a scale_factor")


# --- values -----------------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _positive_int(what: str, value: object) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {_show(value)}")
    return value


def _positive_number(what: str, value: object) -> float:
    if not _is_number(value) or value <= 0:
        raise ConfigError(f"{what} must be a number > 0, got {_show(value)}")
    return float(value)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


_REPR = reprlib.Repr()  # bounded at every level (Python 3.11 has no keyword arguments for these)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def _show(value: object, limit: int = 60) -> str:
    """A value for a one-line message: a bounded repr (never the whole of a large or deep value),
    single-line, truncated."""
    text = _REPR.repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
