"""The closed set of modules a config may name, and the arguments each accepts.

A config's ``module`` column is looked up here, never evaluated or imported, so a config can only
build these classes. Each entry lists its YAML arguments in order, with the type each must have;
`yolospan.yolo.spec` checks a row against its entry before anything is built.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from yolospan.yolo.blocks import C3, SPP, SPPF, Bottleneck, Concat, Conv
from yolospan.yolo.ghost import C3Ghost, DWConv, GhostBottleneck, GhostConv
from yolospan.yolo.heads import Detect, Segment
from yolospan.yolo.transformer import C3TR

__all__ = ["REGISTRY", "ModuleEntry", "Param", "Role", "lookup"]


class Role(enum.Enum):
    """How the builder wires a module: where its input channels come from and what it outputs."""

    CONV = "conv"  # reads one layer; first argument is out_ch, scaled by width_multiple
    CSP = "csp"  # CONV that also takes the row's (depth-scaled) number as its repeats
    CONCAT = "concat"  # reads several layers; outputs the sum of their channels
    RESAMPLE = "resample"  # reads one layer; keeps its channels
    HEAD = "head"  # reads one layer per detection level; must be the last row


@dataclass(frozen=True)
class Param:
    """One positional YAML argument: its keyword name in the module's constructor and its type."""

    name: str
    expects: str  # for messages: "an integer >= 1"
    accepts: Callable[[object], bool]
    required: bool = False


@dataclass(frozen=True)
class ModuleEntry:
    name: str  # as written in configs
    factory: Callable[..., nn.Module]
    role: Role
    params: tuple[Param, ...]

    @property
    def type_name(self) -> str:
        """The class name layer spans are named after (``Upsample``, not ``nn.Upsample``)."""
        return self.name.removeprefix("nn.")

    @property
    def signature(self) -> str:
        return "[" + ", ".join(p.name for p in self.params) + "]"


def _is_int(value: object, minimum: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _param(name: str, expects: str, accepts: Callable[[object], bool], required: bool = False) -> Param:
    return Param(name, expects, accepts, required)


def _count(name: str, required: bool = False) -> Param:
    return _param(name, "an integer >= 1", lambda v: _is_int(v, 1), required)


_OUT_CH = _count("out_ch", required=True)
_SHORTCUT = _param("shortcut", "true or false", lambda v: isinstance(v, bool))
_GROUPS = _count("groups")
_EXPANSION = _param("expansion", "a number > 0", _is_positive_number)
_NC = _count("nc", required=True)
_ANCHORS = _param(
    "anchors",
    "the anchors (the symbol anchors, a list of levels of w,h pairs, or an anchor count)",
    lambda v: _is_int(v, 1) or (isinstance(v, tuple) and bool(v)),
    required=True,
)

_ACT = _param("act", "true or false", lambda v: isinstance(v, bool))
_CSP_PARAMS = (_OUT_CH, _SHORTCUT, _GROUPS, _EXPANSION)


def _is_kernels(value: object) -> bool:
    return isinstance(value, tuple) and bool(value) and all(_is_int(k, 1) and k % 2 for k in value)


def _is_padding(value: object) -> bool:
    return _is_int(value, 0) or (
        isinstance(value, tuple) and len(value) == 4 and all(_is_int(p, 0) for p in value)
    )


_ENTRIES = (
    ModuleEntry(
        "Conv",
        Conv,
        Role.CONV,
        (
            _OUT_CH,
            _count("kernel"),
            _count("stride"),
            _param("padding", "None or an integer >= 0", lambda v: v is None or _is_int(v, 0)),
            _GROUPS,
            _count("dilation"),
            _ACT,
        ),
    ),
    ModuleEntry(
        "DWConv", DWConv, Role.CONV, (_OUT_CH, _count("kernel"), _count("stride"), _count("dilation"), _ACT)
    ),
    ModuleEntry(
        "GhostConv", GhostConv, Role.CONV, (_OUT_CH, _count("kernel"), _count("stride"), _GROUPS, _ACT)
    ),
    ModuleEntry("Bottleneck", Bottleneck, Role.CONV, _CSP_PARAMS),
    ModuleEntry("GhostBottleneck", GhostBottleneck, Role.CONV, (_OUT_CH, _count("kernel"), _count("stride"))),
    ModuleEntry("C3", C3, Role.CSP, _CSP_PARAMS),
    ModuleEntry("C3Ghost", C3Ghost, Role.CSP, _CSP_PARAMS),
    ModuleEntry("C3TR", C3TR, Role.CSP, _CSP_PARAMS),
    ModuleEntry(
        "SPP", SPP, Role.CONV, (_OUT_CH, _param("kernels", "a list of odd integers >= 1", _is_kernels))
    ),
    ModuleEntry("SPPF", SPPF, Role.CONV, (_OUT_CH, _count("kernel"))),
    ModuleEntry("Concat", Concat, Role.CONCAT, (_param("dim", "an integer", _is_int),)),
    ModuleEntry(
        "nn.Upsample",
        nn.Upsample,
        Role.RESAMPLE,
        (
            _param("size", "None or an integer >= 1", lambda v: v is None or _is_int(v, 1), required=True),
            _param("scale_factor", "None or a number > 0", lambda v: v is None or _is_positive_number(v)),
            _param("mode", "'nearest'", lambda v: v == "nearest"),
        ),
    ),
    ModuleEntry(
        "nn.MaxPool2d",
        nn.MaxPool2d,
        Role.RESAMPLE,
        (
            _count("kernel_size", required=True),
            _count("stride"),
            _param("padding", "an integer >= 0", lambda v: _is_int(v, 0)),
        ),
    ),
    ModuleEntry(
        "nn.ZeroPad2d",
        nn.ZeroPad2d,
        Role.RESAMPLE,
        (
            _param(
                "padding",
                "an integer >= 0 or a list [left, right, top, bottom] of them",
                _is_padding,
                required=True,
            ),
        ),
    ),
    ModuleEntry("Detect", Detect, Role.HEAD, (_NC, _ANCHORS)),
    ModuleEntry("Segment", Segment, Role.HEAD, (_NC, _ANCHORS, _count("masks"), _count("protos"))),
)

REGISTRY: dict[str, ModuleEntry] = {entry.name: entry for entry in _ENTRIES}
"""Config module name → entry. The only modules a config can build."""


def lookup(name: str) -> ModuleEntry | None:
    return REGISTRY.get(name)
