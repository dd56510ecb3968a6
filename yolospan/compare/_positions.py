"""One trace's spans sorted into places in the tree that another trace can have too.

A place is (phase, forward number within the phase, layer index and type), where a phase run
inside another phase is named by both (``fuse/info_profile``). Ids and times differ
between any two runs, so they are never used to align; the forward number is the number of the
distinct call within the phase in order of first appearance, where a call is what the forward
received (input shapes, dtype, device, autocast, training flag). Repeats of the same call in a
phase (training steps, repeated inference) land on one place as several samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A

__all__ = ["CALL_KEYS", "Place", "Sample", "TracePlaces", "places_of"]

Attributes = Mapping[str, AttributeValue]

CALL_KEYS = (A.INPUT_SHAPE, A.INPUT_COUNT, A.INPUT_DTYPE, A.DEVICE, A.AUTOCAST, A.TRAINING)
"""What makes two forwards of a phase the same call (the indexed input shapes count too)."""

PHASE_KIND, FORWARD_KIND, LAYER_KIND = "phase", "forward", "layer"


@dataclass(frozen=True)
class Place:
    """Where a span sits, in terms two runs share. ``forward`` is -1 for the phase span itself."""

    phase: str | None
    forward: int
    layer_index: int | None = None
    layer_type: str | None = None
    occurrence: int = 0
    """Counts repeated calls of the same layer within one forward (0 for the first)."""

    def sort_key(self) -> tuple[int, int, str, int]:
        """Tree order within a phase: the phase span, then each forward followed by its layers."""
        index = -1 if self.layer_index is None else self.layer_index
        return (self.forward, index, self.layer_type or "", self.occurrence)

    @property
    def kind(self) -> str:
        if self.forward < 0:
            return PHASE_KIND
        return FORWARD_KIND if self.layer_index is None else LAYER_KIND


@dataclass(frozen=True)
class Sample:
    """One span at a place: its name, duration and attributes."""

    name: str
    duration_ns: int
    attributes: Attributes


@dataclass
class TracePlaces:
    """Every place of one trace with its samples, places in tree order, phases in order of first use."""

    source: str
    span_count: int
    phases: list[str | None] = field(default_factory=list)
    samples: dict[Place, list[Sample]] = field(default_factory=dict)
    forwards: dict[tuple[str | None, int], int] = field(default_factory=dict)
    """Samples of each (phase, forward number): how often that call ran."""

    def add(self, place: Place, sample: Sample) -> None:
        if place.phase not in self.phases:
            self.phases.append(place.phase)
        self.samples.setdefault(place, []).append(sample)


Key = tuple[int, int]


def _key(span: ReadableSpan) -> Key:
    context = span.context
    return (context.trace_id, context.span_id) if context is not None else (0, id(span))


def _parent_key(span: ReadableSpan) -> Key | None:
    parent = span.parent
    context = span.context
    if parent is None or context is None:
        return None
    return (context.trace_id, parent.span_id)


def _duration(span: ReadableSpan) -> int:
    if span.start_time is None or span.end_time is None:
        return 0
    return max(0, span.end_time - span.start_time)


def _call_signature(attrs: Attributes) -> tuple[Any, ...]:
    parts: list[Any] = [_hashable(attrs.get(key)) for key in CALL_KEYS]
    count = attrs.get(A.INPUT_COUNT)
    if isinstance(count, int) and count > 1:
        parts.extend(_hashable(attrs.get(A.input_shape_key(i))) for i in range(min(count, A.MAX_INDEXED)))
    return tuple(parts)


def _hashable(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _phase_of(attrs: Attributes) -> str | None:
    value = attrs.get(A.PHASE)
    return value if isinstance(value, str) else None


def places_of(spans: Sequence[ReadableSpan], source: str) -> TracePlaces:
    """Sort ``spans`` (one or more traces) into places; spans that are not phases, forwards or layers
    are left out."""
    ordered = sorted(enumerate(spans), key=lambda item: (item[1].start_time or 0, item[0]))
    by_key = {_key(span): span for _, span in ordered}
    result = TracePlaces(source, len(spans))
    paths = _PhasePaths(by_key)
    calls: dict[str | None, dict[tuple[Any, ...], int]] = {}
    forward_place: dict[Key, Place] = {}
    for _, span in ordered:  # forwards first: a file need not list a forward before its layers
        if span.name == A.SPAN_FORWARD:
            attrs = span.attributes or {}
            phase = paths.of(span)
            numbers = calls.setdefault(phase, {})
            number = numbers.setdefault(_call_signature(attrs), len(numbers))
            forward_place[_key(span)] = Place(phase, number)
            count_key = (phase, number)
            result.forwards[count_key] = result.forwards.get(count_key, 0) + 1
    layer_counts: dict[tuple[Key, int, str], int] = {}
    for _, span in ordered:
        attrs = span.attributes or {}
        found = forward_place.get(_key(span)) if span.name == A.SPAN_FORWARD else None
        if found is not None:
            place = found
        elif isinstance(attrs.get(A.LAYER_INDEX), int):
            owner = _enclosing_forward(span, by_key, forward_place)
            if owner is None:
                continue
            owner_key, owner_place = owner
            index, kind = int(attrs[A.LAYER_INDEX]), span.name  # type: ignore[arg-type]
            count_key_layer = (owner_key, index, kind)
            occurrence = layer_counts.get(count_key_layer, 0)
            layer_counts[count_key_layer] = occurrence + 1
            place = Place(owner_place.phase, owner_place.forward, index, kind, occurrence)
        elif (own := _phase_of(attrs)) is not None and not _inside_phase(span, own, by_key):
            place = Place(paths.of(span), -1)
        else:
            continue
        result.add(place, Sample(span.name, _duration(span), attrs))
    return result


class _PhasePaths:
    """A span's phase with the phases around it: ``fuse/info_profile`` for the profile that fusing
    runs, so that it is not taken for a repeat of the model's first ``info_profile``."""

    def __init__(self, by_key: Mapping[Key, ReadableSpan]) -> None:
        self._by_key = by_key
        self._known: dict[Key, tuple[str, ...]] = {}

    def _names(self, span: ReadableSpan) -> tuple[str, ...]:
        key = _key(span)
        known = self._known.get(key)
        if known is not None:
            return known
        self._known[key] = ()  # a malformed file whose parents loop ends here
        parent_key = _parent_key(span)
        parent = self._by_key.get(parent_key) if parent_key is not None else None
        names = self._names(parent) if parent is not None else ()
        own = _phase_of(span.attributes or {})
        if own is not None and (not names or names[-1] != own):
            names = (*names, own)
        self._known[key] = names
        return names

    def of(self, span: ReadableSpan) -> str | None:
        names = self._names(span)
        return "/".join(names) if names else None


def _enclosing_forward(
    span: ReadableSpan, by_key: Mapping[Key, ReadableSpan], forwards: Mapping[Key, Place]
) -> tuple[Key, Place] | None:
    parent = _parent_key(span)
    while parent is not None:
        place = forwards.get(parent)
        if place is not None:
            return parent, place
        above = by_key.get(parent)
        parent = _parent_key(above) if above is not None else None
    return None


def _inside_phase(span: ReadableSpan, phase: str, by_key: Mapping[Key, ReadableSpan]) -> bool:
    """Whether a span carrying ``phase`` sits inside another span of the same phase (not the phase's own)."""
    parent_key = _parent_key(span)
    parent = by_key.get(parent_key) if parent_key is not None else None
    return parent is not None and _phase_of(parent.attributes or {}) == phase
