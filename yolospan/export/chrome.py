"""Spans as Chrome Trace Event Format JSON: Perfetto UI, ``chrome://tracing`` and speedscope open it.

Each span is one complete (``X``) event; its attributes and ids are in ``args``; each span event
is an instant (``i``) event on the same thread. Each trace is a process (``pid`` 1, 2, ... in
start order) named after its root. Inside a process, spans are laid out on threads ("lanes")
so that the events of a thread nest strictly, as the format requires: a span goes on its
parent's lane when it fits inside what is open there, otherwise on the first lane where it fits,
otherwise on a new lane. Sequential work is one lane; overlapping spans (threads, DataLoader
workers, a child outliving its parent) get lanes of their own instead of colliding.

Times are microseconds from the earliest span in the file (the format's unit), written with
three decimals so that nanosecond spans keep their exact duration; the epoch time of that origin
is in ``otherData``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue

from yolospan.export.console import span_label
from yolospan.export.spantree import SpanNode, Trace

__all__ = ["assign_lanes", "dump_trace_events", "trace_events"]


def _us(nanoseconds: int) -> float:
    """ns → µs; an integer number of ns over 1000 prints as an exact decimal with at most 3 places."""
    return nanoseconds / 1000


def _json_value(value: AttributeValue | Mapping[str, Any]) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def assign_lanes(nodes: Sequence[SpanNode]) -> dict[int, int]:
    """Lane (0, 1, ...) per span id such that the spans of one lane nest strictly or do not overlap."""
    lanes: list[list[SpanNode]] = []  # per lane: the spans still open there, outermost first
    lane_of: dict[int, int] = {}
    for node in sorted(nodes, key=lambda n: (n.start, -n.duration)):
        parent_lane = lane_of.get(node.parent.span_id) if node.parent is not None else None
        candidates = ([parent_lane] if parent_lane is not None else []) + list(range(len(lanes)))
        for lane in candidates:
            stack = lanes[lane]
            while stack and stack[-1].end <= node.start:
                stack.pop()  # ended before this span starts: later spans start later still
            if not stack or stack[-1].end >= node.end:
                break
        else:
            lanes.append([])
            lane = len(lanes) - 1
        lanes[lane].append(node)
        lane_of[node.span_id] = lane
    return lane_of


def trace_events(traces: Sequence[Trace]) -> dict[str, Any]:
    """The JSON object format: ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``."""
    origin = min((trace.start for trace in traces), default=0)
    events: list[dict[str, Any]] = []
    for pid, trace in enumerate(traces, start=1):
        nodes = list(trace.walk())
        lane_of = assign_lanes(nodes)
        name = f"{trace.name} {trace.hex_id[:8]}"
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}})
        events.append(
            {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}}
        )
        for lane in sorted(set(lane_of.values())):
            tid = lane + 1
            events.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": f"lane {tid}"}}
            )
            events.append(
                {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}
            )
        for node in nodes:
            span, tid = node.span, lane_of[node.span_id] + 1
            args: dict[str, Any] = {key: _json_value(value) for key, value in node.attributes.items()}
            args["span.id"] = f"{node.span_id:016x}"
            args["trace.id"] = trace.hex_id
            if span.parent is not None:
                args["span.parent_id"] = f"{span.parent.span_id:016x}"
            if span.status.status_code.name != "UNSET":
                args["status"] = span.status.status_code.name
                if span.status.description:
                    args["status.description"] = span.status.description
            events.append(
                {
                    "ph": "X",
                    "name": span_label(span),
                    "cat": node.phase or "span",
                    "ts": _us(node.start - origin),
                    "dur": _us(node.duration),
                    "pid": pid,
                    "tid": tid,
                    "args": args,
                }
            )
            for event in span.events:
                events.append(
                    {
                        "ph": "i",
                        "s": "t",
                        "name": event.name,
                        "cat": node.phase or "span",
                        "ts": _us(max(event.timestamp, node.start) - origin),
                        "pid": pid,
                        "tid": tid,
                        "args": {key: _json_value(value) for key, value in (event.attributes or {}).items()},
                    }
                )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"producer": "yolospan show", "origin_unix_nano": str(origin)},
    }


def dump_trace_events(traces: Sequence[Trace]) -> str:
    """`trace_events` as compact JSON text."""
    return json.dumps(trace_events(traces), separators=(",", ":"), ensure_ascii=False) + "\n"
