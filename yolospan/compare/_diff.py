"""`diff`: two traces compared place by place, as typed rows.

Each row is one place (see `yolospan.compare._positions`): the phase span, a forward, or a layer
of a forward. Its `Timing` on each side is the median and the interquartile range of the
durations of the spans found there, so a phase that ran a call many times is compared as a
distribution; the attributes that describe the call (shapes, dtypes, device, FLOPs) are compared
by their most common value on each side.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.compare._positions import (
    FORWARD_KIND,
    LAYER_KIND,
    PHASE_KIND,
    Place,
    Sample,
    TracePlaces,
    places_of,
)
from yolospan.errors import UserError

__all__ = ["AttributeChange", "DiffError", "DiffRow", "PhaseDiff", "Timing", "TraceDiff", "diff"]

TraceSource = str | os.PathLike[str] | Iterable[ReadableSpan]
"""A trace file's path, or spans (e.g. ``read_trace_file``'s result or an in-memory exporter's)."""

_CALL_ATTRIBUTES = (
    A.INPUT_COUNT,
    A.INPUT_SHAPE,
    *(A.input_shape_key(i) for i in range(1, A.MAX_INDEXED)),  # input.0.shape is input.shape
    A.INPUT_DTYPE,
    A.DEVICE,
    A.AUTOCAST,
    A.TRAINING,
    A.OUTPUT_COUNT,
    *(A.output_shape_key(i) for i in range(A.MAX_INDEXED)),
    A.OUTPUT_DTYPE,
    A.FLOPS,
    A.FLOPS_TORCH,
    A.LAYER_PARAMS,
    A.LAYER_FROM,
)
"""The attributes of a forward or layer span that are compared, in the order they are listed."""
_PHASE_IGNORED = frozenset({A.PHASE, A.RUN_ID})
_NO_PHASE = "(no phase)"


class DiffError(UserError):
    """Two traces that cannot be compared; the message is one line naming the input and the problem."""


@dataclass(frozen=True)
class Timing:
    """The durations found at one place on one side: how many, their median and spread."""

    count: int
    median_ns: float
    spread_ns: float
    """Interquartile range (0 for a single sample): half the samples lie within it."""
    min_ns: int
    max_ns: int

    @classmethod
    def of(cls, durations: Sequence[int]) -> Timing:
        spread = 0.0
        if len(durations) > 1:
            q1, _, q3 = statistics.quantiles(durations, n=4, method="inclusive")
            spread = q3 - q1
        return cls(
            len(durations), float(statistics.median(durations)), spread, min(durations), max(durations)
        )


@dataclass(frozen=True)
class AttributeChange:
    """One attribute whose (most common) value differs between A and B; None where a side lacks it."""

    key: str
    a: AttributeValue | None
    b: AttributeValue | None


@dataclass(frozen=True)
class DiffRow:
    """One place of the tree on both sides. ``a`` or ``b`` is None when only the other side has it."""

    phase: str | None
    forward: int
    """Number of the distinct call within the phase, from 0; -1 for the phase span's own row."""
    layer_index: int | None
    layer_type: str | None
    occurrence: int
    name: str
    a: Timing | None
    b: Timing | None
    changes: tuple[AttributeChange, ...]

    @property
    def kind(self) -> str:
        """``phase``, ``forward`` or ``layer``."""
        if self.forward < 0:
            return PHASE_KIND
        return FORWARD_KIND if self.layer_index is None else LAYER_KIND

    @property
    def side(self) -> str:
        """``both``, ``a`` (only in A) or ``b`` (only in B)."""
        if self.a is None:
            return "b"
        return "a" if self.b is None else "both"

    @property
    def ratio(self) -> float | None:
        """Median duration in B over median in A; None for one-sided rows or a zero median in A."""
        if self.a is None or self.b is None or self.a.median_ns <= 0:
            return None
        return self.b.median_ns / self.a.median_ns

    @property
    def change(self) -> float:
        """How big the timing change is either way (2.0 for twice or half as long); 1.0 when unknown."""
        ratio = self.ratio
        if ratio is None or ratio <= 0:
            return 1.0
        return max(ratio, 1 / ratio)

    def slower_than(self, percent: float) -> bool:
        """Whether B's median is more than ``percent`` % above A's (phase rows never count)."""
        ratio = self.ratio
        return self.kind != PHASE_KIND and ratio is not None and ratio > 1 + percent / 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "forward": self.forward,
            "kind": self.kind,
            "layer_index": self.layer_index,
            "layer_type": self.layer_type,
            "occurrence": self.occurrence,
            "name": self.name,
            "side": self.side,
            "a": _timing_dict(self.a),
            "b": _timing_dict(self.b),
            "ratio": self.ratio,
            "changes": [{"key": c.key, "a": _json_value(c.a), "b": _json_value(c.b)} for c in self.changes],
        }


@dataclass(frozen=True)
class PhaseDiff:
    """One phase: its rows in tree order, and how often each forward ran on each side."""

    phase: str | None
    rows: tuple[DiffRow, ...]
    forwards: tuple[tuple[int, int, int], ...]
    """Per forward number: (number, samples in A, samples in B)."""

    @property
    def label(self) -> str:
        return self.phase if self.phase is not None else _NO_PHASE

    @property
    def distributions(self) -> bool:
        """Whether any forward of this phase ran more than once on a side."""
        return any(a > 1 or b > 1 for _, a, b in self.forwards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "forwards": [{"forward": n, "count_a": a, "count_b": b} for n, a, b in self.forwards],
            "rows": [row.to_dict() for row in self.rows],
        }


@dataclass(frozen=True)
class TraceDiff:
    """Trace A against trace B, phase by phase."""

    a: str
    b: str
    phases: tuple[PhaseDiff, ...]

    @property
    def rows(self) -> list[DiffRow]:
        return [row for phase in self.phases for row in phase.rows]

    def phase(self, name: str | None) -> PhaseDiff:
        for found in self.phases:
            if found.phase == name:
                return found
        raise KeyError(name)

    def regressions(self, percent: float) -> list[DiffRow]:
        """Aligned forwards and layers whose median got slower by more than ``percent`` %."""
        return [row for row in self.rows if row.slower_than(percent)]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "phases": [phase.to_dict() for phase in self.phases]}


def diff(a: TraceSource, b: TraceSource, *, phases: Collection[str] | None = None) -> TraceDiff:
    """Compare trace ``a`` with trace ``b`` (paths of trace files, or spans) place by place.

    ``phases`` limits the comparison to those phases (``yolospan.phase`` values). Raises
    `DiffError` when a side has no phase or forward spans, when the two have nothing in common,
    or when a compared phase is missing on one side; `yolospan.export.TraceFileError` when a
    file is not a trace.
    """
    left, right = _places(a, "A"), _places(b, "B")
    for side in (left, right):
        if not side.samples:
            raise DiffError(f"{side.source}: no forward or phase spans to compare ({side.span_count} spans)")
    chosen = _choose_phases(left, right, phases)
    return TraceDiff(left.source, right.source, tuple(_phase_diff(p, left, right) for p in chosen))


def _places(source: TraceSource, side: str) -> TracePlaces:
    if isinstance(source, (str, os.PathLike)):
        from yolospan.export.tracefile import read_trace_file

        spans = read_trace_file(source)
        name = str(source)
        if not spans:
            raise DiffError(f"{name}: not a trace (no spans in it)")
    else:
        spans = list(source)
        name = side
    return places_of(spans, name)


def _names(phases: Iterable[str | None]) -> str:
    return ", ".join(p if p is not None else _NO_PHASE for p in phases) or "none"


def _choose_phases(left: TracePlaces, right: TracePlaces, wanted: Collection[str] | None) -> list[str | None]:
    if wanted is not None:
        for name in wanted:
            for side in (left, right):
                if name not in side.phases:
                    raise DiffError(
                        f"{side.source}: phase {name!r} is not in it (it has {_names(side.phases)})"
                    )
        return [p for p in left.phases if p in wanted]
    common = [p for p in left.phases if p in right.phases]
    if not common:
        raise DiffError(
            f"{left.source} and {right.source} have nothing in common: no phase on both sides "
            f"(A: {_names(left.phases)}; B: {_names(right.phases)})"
        )
    for one, other in ((left, right), (right, left)):
        missing = [p for p in one.phases if p not in other.phases]
        if missing:
            raise DiffError(
                f"{other.source}: phase {_names(missing[:1])} is missing (it is in {one.source}); "
                f"compare the common phases with --phase ({_names(common)})"
            )
    return common


def _phase_diff(phase: str | None, left: TracePlaces, right: TracePlaces) -> PhaseDiff:
    places = {p for side in (left, right) for p in side.samples if p.phase == phase}
    rows = tuple(
        _row(place, left.samples.get(place), right.samples.get(place))
        for place in sorted(places, key=Place.sort_key)
    )
    numbers = sorted({n for side in (left, right) for (p, n) in side.forwards if p == phase})
    forwards = tuple(
        (n, left.forwards.get((phase, n), 0), right.forwards.get((phase, n), 0)) for n in numbers
    )
    return PhaseDiff(phase, rows, forwards)


def _row(place: Place, a: list[Sample] | None, b: list[Sample] | None) -> DiffRow:
    name = (a or b or [Sample("?", 0, {})])[0].name
    return DiffRow(
        phase=place.phase,
        forward=place.forward,
        layer_index=place.layer_index,
        layer_type=place.layer_type,
        occurrence=place.occurrence,
        name=name,
        a=Timing.of([s.duration_ns for s in a]) if a else None,
        b=Timing.of([s.duration_ns for s in b]) if b else None,
        changes=_changes(place, a, b) if a and b else (),
    )


def _changes(place: Place, a: list[Sample], b: list[Sample]) -> tuple[AttributeChange, ...]:
    if place.kind == PHASE_KIND:
        if len(a) != 1 or len(b) != 1:
            return ()  # a phase's own attributes (loss, step) differ from one repeat to the next
        keys: Iterable[str] = [
            k for k in dict.fromkeys([*a[0].attributes, *b[0].attributes]) if k not in _PHASE_IGNORED
        ]
    else:
        keys = _CALL_ATTRIBUTES
    changes = []
    for key in keys:
        left, right = _common_value(a, key), _common_value(b, key)
        if left != right:
            changes.append(AttributeChange(key, _attribute(left), _attribute(right)))
    return tuple(changes)


def _common_value(samples: Sequence[Sample], key: str) -> Any:
    values = Counter(_comparable(s.attributes.get(key)) for s in samples)
    return values.most_common(1)[0][0]


def _comparable(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _comparable(v)) for k, v in value.items()))
    return value


def _attribute(value: Any) -> AttributeValue | None:
    if isinstance(value, tuple):
        return list(value)
    return value  # type: ignore[no-any-return]


def _json_value(value: AttributeValue | None) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _timing_dict(timing: Timing | None) -> dict[str, Any] | None:
    if timing is None:
        return None
    return {
        "count": timing.count,
        "median_ns": timing.median_ns,
        "spread_ns": timing.spread_ns,
        "min_ns": timing.min_ns,
        "max_ns": timing.max_ns,
    }
