"""Finished spans as trees, one per trace: what `yolospan show` and the viewers draw.

`build_traces` groups spans by trace id and nests them by parent id; a span whose parent is not
among the spans (a partial file) becomes a root of its trace. Children are ordered by start time,
so a finished tree reads in the order the work happened. `summarize` gives a trace's closing
figures: spans, forwards by phase, FLOPs, time per phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A

__all__ = [
    "NO_PHASE",
    "SpanNode",
    "Trace",
    "TraceSummary",
    "build_traces",
    "select_phase",
    "select_traces",
    "summarize",
]

NO_PHASE = "(none)"
"""How the summary names forwards that ran outside any phase."""


@dataclass(eq=False)
class SpanNode:
    """One span in its trace's tree."""

    span: ReadableSpan
    parent: SpanNode | None
    depth: int
    call: bool
    """A module call: a ``forward`` span or a span inside one (its layers)."""
    phase: str | None
    """The span's ``yolospan.phase``, or the nearest ancestor's."""
    children: list[SpanNode] = field(default_factory=list)

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        return self.span.attributes or {}

    @property
    def span_id(self) -> int:
        return _span_id(self.span)

    @property
    def start(self) -> int:
        """Start time in ns since the epoch (0 when the file has none)."""
        return self.span.start_time or 0

    @property
    def end(self) -> int:
        """End time in ns; a span without one ends where it starts."""
        return max(self.span.end_time or self.start, self.start)

    @property
    def duration(self) -> int:
        return self.end - self.start

    @property
    def is_layer(self) -> bool:
        return A.LAYER_INDEX in self.attributes


@dataclass(eq=False)
class Trace:
    """The spans of one trace id, as trees (usually one root)."""

    trace_id: int
    roots: list[SpanNode]

    def walk(self) -> Iterator[SpanNode]:
        """Every node, depth first, children in start order (the order the tree is printed)."""
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    @property
    def spans(self) -> list[ReadableSpan]:
        return [node.span for node in self.walk()]

    @property
    def start(self) -> int:
        return min(root.start for root in self.roots)

    @property
    def end(self) -> int:
        return max(node.end for node in self.walk())

    @property
    def hex_id(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def name(self) -> str:
        """The first root's name (``model.init``, ``train_step``)."""
        return self.roots[0].span.name


def _span_id(span: ReadableSpan) -> int:
    context = span.context
    return context.span_id if context is not None else 0


def _trace_id(span: ReadableSpan) -> int:
    context = span.context
    return context.trace_id if context is not None else 0


def _by_start(span: ReadableSpan) -> tuple[int, int]:
    # Ties: the longer span first, so a parent that starts with its child stays above it.
    start = span.start_time or 0
    return start, -((span.end_time or start) - start)


def build_traces(spans: Iterable[ReadableSpan]) -> list[Trace]:
    """One `Trace` per trace id, earliest first; a span seen twice (same ids) is kept once."""
    by_trace: dict[int, dict[int, ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(_trace_id(span), {}).setdefault(_span_id(span), span)
    traces = [_build_trace(trace_id, members) for trace_id, members in by_trace.items()]
    return sorted(traces, key=lambda trace: (trace.start, trace.trace_id))


def _build_trace(trace_id: int, members: Mapping[int, ReadableSpan]) -> Trace:
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(members.values(), key=_by_start):
        parent_id = span.parent.span_id if span.parent is not None else None
        if parent_id not in members or parent_id == _span_id(span):
            parent_id = None  # its parent is missing: a root of what could be read
        children.setdefault(parent_id, []).append(span)

    def grow(span: ReadableSpan, parent: SpanNode | None) -> SpanNode:
        attrs = span.attributes or {}
        phase = attrs.get(A.PHASE)
        return SpanNode(
            span=span,
            parent=parent,
            depth=parent.depth + 1 if parent is not None else 0,
            # As the live tree decides it: a forward, or anything inside one (its layers).
            call=span.name == A.SPAN_FORWARD or (parent is not None and parent.call),
            phase=phase if isinstance(phase, str) else (parent.phase if parent is not None else None),
        )

    roots: list[SpanNode] = []
    # Iterative, so that a deep tree cannot exhaust the recursion limit.
    pending: list[tuple[ReadableSpan, SpanNode | None]] = [
        (s, None) for s in reversed(children.get(None, []))
    ]
    while pending:
        span, parent = pending.pop()
        node = grow(span, parent)
        (parent.children if parent is not None else roots).append(node)
        pending.extend((child, node) for child in reversed(children.get(_span_id(span), [])))
    return Trace(trace_id, roots)


def select_traces(traces: Sequence[Trace], prefixes: Sequence[str]) -> list[Trace]:
    """The traces whose hex id starts with one of ``prefixes`` (case-insensitive), in order."""
    wanted = [prefix.lower() for prefix in prefixes]
    return [trace for trace in traces if any(trace.hex_id.startswith(prefix) for prefix in wanted)]


def select_phase(traces: Sequence[Trace], phase: str) -> list[Trace]:
    """Each trace cut down to the spans of ``phase`` and their ancestors; traces without any are dropped."""
    kept: list[ReadableSpan] = []
    for trace in traces:
        keep: dict[int, ReadableSpan] = {}
        for node in trace.walk():
            if node.phase == phase:
                ancestor: SpanNode | None = node
                while ancestor is not None and ancestor.span_id not in keep:
                    keep[ancestor.span_id] = ancestor.span
                    ancestor = ancestor.parent
        kept.extend(keep.values())
    return build_traces(kept)


@dataclass(frozen=True)
class TraceSummary:
    """A trace's figures, as `yolospan show` closes each trace with them."""

    spans: int
    duration: int
    """ns from the first start to the last end."""
    forwards: dict[str, int]
    """Outermost ``forward`` spans by phase (`NO_PHASE` for none), in order of first appearance."""
    flops: int | None
    """FLOPs of those forwards (each forward's count already includes its layers); None if none has any."""
    phase_time: dict[str, int]
    """ns per phase: the summed durations of the spans where the phase begins."""


def summarize(trace: Trace) -> TraceSummary:
    forwards: dict[str, int] = {}
    flops: int | None = None
    phase_time: dict[str, int] = {}
    count = 0
    for node in trace.walk():
        count += 1
        outer_forward = node.span.name == A.SPAN_FORWARD and not (
            node.parent is not None and node.parent.call
        )
        if outer_forward:
            phase = node.phase or NO_PHASE
            forwards[phase] = forwards.get(phase, 0) + 1
            value = node.attributes.get(A.FLOPS)
            if isinstance(value, int) and not isinstance(value, bool):
                flops = (flops or 0) + value
        starts_phase = node.phase is not None and (node.parent is None or node.parent.phase != node.phase)
        if starts_phase and node.phase is not None:
            phase_time[node.phase] = phase_time.get(node.phase, 0) + node.duration
    return TraceSummary(
        spans=count,
        duration=trace.end - trace.start,
        forwards=forwards,
        flops=flops,
        phase_time=phase_time,
    )
