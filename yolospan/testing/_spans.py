"""Finished spans as a navigable tree of plain Python values, and the queries over them.

`RecordedSpan` wraps one SDK ``ReadableSpan`` (attributes as plain values: lists, not tuples)
and knows its parent and children; `SpanList` is an ordered selection of them with the query
API. Both keep a reference to the whole recording so that a failed query can show it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan

from yolospan import attributes as A
from yolospan.testing import _report
from yolospan.testing._expect import Expectation, parse_expectation
from yolospan.testing._query import Selector, build_selector

_TIMED: Final = (A.DEVICE_TIME_MS, A.ACHIEVED_FLOPS_PER_S, A.PEAK_FRACTION)
"""Attributes whose values come from a clock: a deterministic snapshot leaves them out."""

__all__ = ["NameSpec", "RecordedSpan", "SpanAssertionError", "SpanList"]

NameSpec: TypeAlias = "str | re.Pattern[str] | Callable[[str], object] | None"
"""A span name to match exactly, a regular expression for the whole name, or a predicate."""

SpanKey: TypeAlias = tuple[int, int]
"""(trace_id, span_id): unique per span, also across several trace files."""

_STACKTRACE: Final = "exception.stacktrace"


class SpanAssertionError(AssertionError):
    """A span assertion failed; the message holds the recorded tree and the nearest candidates."""

    __module__ = "yolospan.testing"  # where users import it from, and how pytest prints it


def plain(value: Any) -> Any:
    """An attribute value as plain Python: sequences become lists, mappings dicts."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _key(span: ReadableSpan) -> SpanKey:
    context = span.context
    return (context.trace_id, context.span_id) if context is not None else (0, id(span))


class RecordedSpan:
    """One finished span: ``name``, plain ``attributes``, ``parent``, ``children`` and more."""

    __slots__ = ("_children", "_recording", "attributes", "index", "name", "parent", "readable")

    def __init__(self, readable: ReadableSpan, recording: _Recording) -> None:
        self.readable = readable
        """The SDK span, for anything this wrapper does not expose."""
        self.name: str = readable.name
        self.attributes: dict[str, Any] = {k: plain(v) for k, v in (readable.attributes or {}).items()}
        self.parent: RecordedSpan | None = None
        self.index = -1
        """Position in the recording's order of occurrence (the order spans started in)."""
        self._children: list[RecordedSpan] = []
        self._recording = recording

    # --- navigation --------------------------------------------------------------------------

    @property
    def children(self) -> SpanList:
        """Direct children in order of occurrence."""
        return SpanList(self._children, self._recording)

    def descendants(self) -> SpanList:
        """Every span below this one, depth first, each before its children."""
        found: list[RecordedSpan] = []
        pending = list(reversed(self._children))
        while pending:
            span = pending.pop()
            found.append(span)
            pending.extend(reversed(span._children))
        return SpanList(found, self._recording)

    def ancestors(self) -> SpanList:
        """The parent, its parent and so on up to the root."""
        found = []
        span = self.parent
        while span is not None:
            found.append(span)
            span = span.parent
        return SpanList(found, self._recording)

    # --- plain facts -------------------------------------------------------------------------

    @property
    def phase(self) -> str | None:
        value = self.attributes.get(A.PHASE)
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str:
        """``UNSET``, ``OK`` or ``ERROR``."""
        return self.readable.status.status_code.name

    @property
    def status_description(self) -> str | None:
        return self.readable.status.description

    @property
    def trace_id(self) -> str:
        return format(_key(self.readable)[0], "032x")

    @property
    def span_id(self) -> str:
        return format(_key(self.readable)[1], "016x")

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events (an exception recorded by a failing forward is one) as name, attributes, time."""
        return [
            {
                "name": e.name,
                "attributes": {k: plain(v) for k, v in (e.attributes or {}).items()},
                "time": e.timestamp,
            }
            for e in self.readable.events
        ]

    def as_dict(self, *, deterministic: bool = False) -> dict[str, Any]:
        """The span as a plain dict for snapshot tests.

        With ``deterministic=True`` ids become small integers in order of occurrence (traces
        numbered likewise), times become ticks of a logical clock that keeps the order spans
        started and ended in, events lose their time and stack trace, and the attributes measured
        by a clock (device time, achieved FLOP/s, fraction of peak) are left out.
        """
        return self._recording.as_dict(self, deterministic)

    def __repr__(self) -> str:
        return f"<RecordedSpan #{self.index} {_report.describe(self)}>"


class _Queries:
    """The query API, shared by `SpanList` and the live `SpanRecorder`."""

    def _snapshot(self) -> SpanList:
        raise NotImplementedError

    def find(
        self, name: NameSpec = None, *, attrs: Mapping[str, Any] | None = None, **shorthands: Any
    ) -> SpanList:
        """Spans with this name whose attributes match, in order of occurrence.

        ``attrs`` takes full keys (``{"yolospan.layer.index": 3}``); keyword shorthands name
        contract keys (``phase="amp_check"``, ``input_shape=[1, 3, "*", "*"]``). Values match
        exactly, by predicate (a callable), by regular expression or by shape pattern; ``None``
        matches an absent attribute.
        """
        return self._snapshot().select(build_selector(name, attrs, shorthands))

    def one(
        self, name: NameSpec = None, *, attrs: Mapping[str, Any] | None = None, **shorthands: Any
    ) -> RecordedSpan:
        """The single span `find` would return; otherwise SpanAssertionError with the tree."""
        __tracebackhide__ = True
        selector = build_selector(name, attrs, shorthands)
        (span,) = self._snapshot()._require(selector, "==", 1)
        return span

    def assert_count(
        self,
        expected: int,
        name: NameSpec = None,
        *,
        attrs: Mapping[str, Any] | None = None,
        **shorthands: Any,
    ) -> SpanList:
        """Exactly ``expected`` spans match; returns them, or raises SpanAssertionError with the tree."""
        __tracebackhide__ = True
        return self._snapshot()._require(build_selector(name, attrs, shorthands), "==", expected)

    def assert_none(
        self, name: NameSpec = None, *, attrs: Mapping[str, Any] | None = None, **shorthands: Any
    ) -> None:
        """No span matches; otherwise SpanAssertionError showing the offenders in the tree."""
        __tracebackhide__ = True
        self._snapshot()._require(build_selector(name, attrs, shorthands), "==", 0)

    def check(self, *expectations: str) -> None:
        """Apply expectations in ``yolospan check``'s grammar, e.g. ``'forward[phase=fuse] == 0'``."""
        __tracebackhide__ = True
        snapshot = self._snapshot()
        outcomes = [parse_expectation(text).evaluate(snapshot) for text in expectations]
        failed = [outcome for outcome in outcomes if not outcome.holds]
        if failed:
            raise SpanAssertionError(_report.expectations_failed(failed, snapshot))

    def phase(self, name: str) -> SpanList:
        """Every span of a phase: the phase span and each span run inside it."""
        return self.find(attrs={A.PHASE: name})

    def names(self) -> list[str]:
        return [span.name for span in self._snapshot()]

    @property
    def roots(self) -> SpanList:
        """Spans of this selection whose parent is not in it."""
        snapshot = self._snapshot()
        members = {id(span) for span in snapshot}
        return SpanList(
            [s for s in snapshot if s.parent is None or id(s.parent) not in members], snapshot.recording
        )

    def assert_names(self, expected: Sequence[str]) -> None:
        """The spans' names are exactly ``expected``, in this order; otherwise the tree is shown."""
        __tracebackhide__ = True
        snapshot = self._snapshot()
        if snapshot.names() != list(expected):
            raise SpanAssertionError(_report.names_failed(snapshot, list(expected)))

    def as_dicts(self, *, deterministic: bool = False) -> list[dict[str, Any]]:
        """Every span as `RecordedSpan.as_dict`, in order of occurrence."""
        return [span.as_dict(deterministic=deterministic) for span in self._snapshot()]

    def tree(self) -> str:
        """The whole recording as the indented tree failure messages show."""
        return "\n".join(_report.render_tree(self._snapshot().recording.spans))


class SpanList(_Queries, list[RecordedSpan]):
    """An ordered selection of recorded spans: a list, plus the query API over its members."""

    def __init__(self, spans: Iterable[RecordedSpan] = (), recording: _Recording | None = None) -> None:
        super().__init__(spans)
        self.recording = recording if recording is not None else _Recording([], "nothing")

    @classmethod
    def from_readable(
        cls,
        spans: Iterable[ReadableSpan],
        *,
        source: str = "spans",
        hint: str = "",
        clock: Mapping[SpanKey, tuple[int, int]] | None = None,
    ) -> SpanList:
        """Queryable spans from SDK spans (an exporter's or `read_trace_file`'s).

        ``source`` and ``hint`` go into failure reports (where the spans came from, what to
        check when there are none). ``clock`` maps (trace_id, span_id) to the logical (start,
        end) ticks seen by a span processor; without it the order of occurrence follows the
        start timestamps.
        """
        recording = _Recording(list(spans), source, hint, clock)
        return cls(recording.spans, recording)

    def _snapshot(self) -> SpanList:
        return self

    def select(self, selector: Selector) -> SpanList:
        return SpanList([span for span in self if selector.matches(span)], self.recording)

    def _require(self, selector: Selector, op: str, count: int) -> SpanList:
        __tracebackhide__ = True
        outcome = Expectation(selector, op, count).evaluate(self)
        if not outcome.holds:
            raise SpanAssertionError(_report.expectation_failed(outcome, self))
        matches = outcome.matches
        assert isinstance(matches, SpanList)  # evaluate selects from self, a SpanList
        return matches

    def __repr__(self) -> str:
        return f"SpanList({list.__repr__(self)})"


class _Recording:
    """All spans of one capture (or of the trace files read together), linked into a tree."""

    def __init__(
        self,
        readable: list[ReadableSpan],
        source: str,
        hint: str = "",
        clock: Mapping[SpanKey, tuple[int, int]] | None = None,
    ) -> None:
        self.source = source
        """Where the spans came from, for reports (``spans fixture``, the trace files' names)."""
        self.hint = hint
        """What to check when nothing was recorded."""
        by_key: dict[SpanKey, RecordedSpan] = {}
        for span in readable:  # a span exported twice (a retry, a file given twice) counts once
            key = _key(span)
            if key not in by_key:
                by_key[key] = RecordedSpan(span, self)
        for (trace_id, _), recorded in by_key.items():
            parent = recorded.readable.parent
            if parent is not None:
                recorded.parent = by_key.get((trace_id, parent.span_id))
        wrapped = list(by_key.values())
        _break_cycles(wrapped)
        if clock is not None and all(key in clock for key in by_key):
            ticks = {id(by_key[key]): clock[key] for key in by_key}
        else:
            ticks = _ticks_from_timestamps(wrapped)
        self.spans = sorted(wrapped, key=lambda span: ticks[id(span)][0])
        for index, recorded in enumerate(self.spans):
            recorded.index = index
            if recorded.parent is not None:
                recorded.parent._children.append(recorded)
        dense = {tick: rank for rank, tick in enumerate(sorted(t for pair in ticks.values() for t in pair))}
        self._ticks = {
            id(recorded): (dense[ticks[id(recorded)][0]], dense[ticks[id(recorded)][1]])
            for recorded in self.spans
        }
        self._trace_numbers: dict[int, int] = {}
        for recorded in self.spans:
            self._trace_numbers.setdefault(_key(recorded.readable)[0], len(self._trace_numbers) + 1)

    def as_dict(self, span: RecordedSpan, deterministic: bool) -> dict[str, Any]:
        readable = span.readable
        parent = readable.parent
        if deterministic:
            start, end = self._ticks[id(span)]
            data: dict[str, Any] = {
                "name": span.name,
                "trace_id": self._trace_numbers[_key(readable)[0]],
                "span_id": span.index + 1,
                "parent_id": None if span.parent is None else span.parent.index + 1,
                "start_time": start,
                "end_time": end,
            }
        else:
            data = {
                "name": span.name,
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "parent_id": None if parent is None else format(parent.span_id, "016x"),
                "start_time": readable.start_time,
                "end_time": readable.end_time,
            }
        data["status"] = span.status
        if span.status_description:
            data["status_description"] = span.status_description
        data["attributes"] = dict(span.attributes)
        if deterministic:
            for key in _TIMED:
                data["attributes"].pop(key, None)
        events = span.events
        if events:
            if deterministic:
                for event in events:
                    del event["time"]
                    event["attributes"].pop(_STACKTRACE, None)
            data["events"] = events
        return data


def _ticks_from_timestamps(spans: list[RecordedSpan]) -> dict[int, tuple[int, int]]:
    """Logical ticks from timestamps; on ties starts come first, parents' starts and children's ends first."""

    def depth(span: RecordedSpan) -> int:
        return len(span.ancestors())

    events: list[tuple[int, int, int, int, int]] = []
    for position, span in enumerate(spans):
        start = span.readable.start_time or 0
        end = span.readable.end_time or start
        level = depth(span)
        events.append((start, 0, level, position, 0))
        events.append((end, 1, -level, position, 1))
    events.sort()
    ticks: dict[int, list[int]] = {id(span): [0, 0] for span in spans}
    for tick, (_, _, _, position, which) in enumerate(events):
        ticks[id(spans[position])][which] = tick
    return {key: (pair[0], pair[1]) for key, pair in ticks.items()}


def _break_cycles(spans: Sequence[RecordedSpan]) -> None:
    """Make the parent links a forest: a file may claim a span is its own (grand)parent, which would
    send every walk up the tree round for ever. The link that closes a loop is dropped."""
    done: set[int] = set()
    for span in spans:
        path: list[RecordedSpan] = []
        on_path: set[int] = set()
        node: RecordedSpan | None = span
        while node is not None and id(node) not in done and id(node) not in on_path:
            path.append(node)
            on_path.add(id(node))
            node = node.parent
        if node is not None and id(node) in on_path:
            path[-1].parent = None
        done.update(on_path)
