from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from handbuilt_spans import SpanBuilder, call_attributes, model_init_trace
from yolospan import attributes as A
from yolospan.export.chrome import assign_lanes, dump_trace_events, trace_events
from yolospan.export.spantree import build_traces

PHASES = {"X", "B", "E", "i", "I", "M"}


def _ns(microseconds: Any) -> int:
    """µs as written in the file → integer ns, exactly (through the decimal text, as Perfetto reads it)."""
    value = Decimal(repr(microseconds)) * 1000
    assert value == value.to_integral_value(), f"{microseconds} µs is not a whole number of ns"
    return int(value)


def check_trace_event_format(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules of the Trace Event Format that viewers rely on; returns the events.

    Every event has a known ``ph``, a name and integer pid/tid; ``X`` events have numeric
    ``ts``/``dur`` >= 0 in µs; ``B``/``E`` pairs balance per thread, in order; the complete events
    of one thread nest strictly (viewers draw a thread as one stack); metadata names every process
    and thread that has events, and every named thread belongs to a named process.
    """
    assert isinstance(document["traceEvents"], list)
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = document["traceEvents"]
    open_b: dict[tuple[int, int], list[str]] = defaultdict(list)
    slices: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    processes, threads, used = set(), set(), set()
    for event in events:
        assert event["ph"] in PHASES, event
        assert isinstance(event["name"], str) and event["name"], event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int), event
        key = (event["pid"], event["tid"])
        if event["ph"] == "M":
            if event["name"] == "process_name":
                processes.add(event["pid"])
            elif event["name"] == "thread_name":
                threads.add(key)
            continue
        assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0, event
        used.add(key)
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0, event
            start = _ns(event["ts"])
            slices[key].append((start, start + _ns(event["dur"])))
        elif event["ph"] == "B":
            open_b[key].append(event["name"])
        elif event["ph"] == "E":
            assert open_b[key], f"E without B on {key}"
            open_b[key].pop()
        if "args" in event:
            assert isinstance(event["args"], dict)
    assert not any(open_b.values()), f"unbalanced B events: {dict(open_b)}"
    for key, spans in slices.items():
        stack: list[int] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], f"overlapping, not nested, slices on pid/tid {key}"
            stack.append(end)
    assert used <= threads, f"threads without a name: {used - threads}"
    assert {pid for pid, _ in threads} <= processes, "a thread of an unnamed process"
    return events


def _complete(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["ph"] == "X"]


def test_every_span_is_one_complete_event_with_its_exact_duration_and_attributes():
    builder = model_init_trace()
    document = json.loads(dump_trace_events(build_traces(builder.spans)))
    events = check_trace_event_format(document)
    by_id = {event["args"]["span.id"]: event for event in _complete(events)}
    assert len(by_id) == len(builder.spans) == 10
    origin = min(span.start_time for span in builder.spans)
    for span in builder.spans:
        event = by_id[f"{span.context.span_id:016x}"]
        assert _ns(event["dur"]) == span.end_time - span.start_time
        assert _ns(event["ts"]) == span.start_time - origin
        for key, value in span.attributes.items():
            assert event["args"][key] == (list(value) if isinstance(value, tuple) else value)
    conv = next(event for event in _complete(events) if event["name"] == "Conv #0")
    assert conv["cat"] == "info_profile"
    assert conv["args"]["yolospan.input.shape"] == [1, 3, 64, 64]
    amp = next(event for event in _complete(events) if event["name"] == "amp_check")
    assert amp["args"]["status"] == "ERROR"
    assert amp["args"]["status.description"] == "AMP checks failed"
    # Sequential work stays on one lane: a single thread.
    assert {event["tid"] for event in _complete(events)} == {1}


def test_durations_keep_every_nanosecond():
    b = SpanBuilder()
    b.add("odd", 0.000001, 1.234567)  # 1 ns to 1,234,567 ns
    (event,) = _complete(check_trace_event_format(trace_events(build_traces(b.spans))))
    assert _ns(event["dur"]) == 1_234_566
    assert json.loads(json.dumps(event))["dur"] == 1234.566


def test_overlapping_spans_get_lanes_of_their_own():
    b = SpanBuilder()
    step = b.add("train_step", 0, 100)
    b.add("load", 10, 40, parent=step)  # a DataLoader worker ...
    b.add("load", 20, 50, parent=step)  # ... and another, overlapping it
    b.add("forward", 30, 90, parent=step, attributes=call_attributes([1], [1]))  # overlaps both
    b.add("late", 95, 120, parent=step)  # outlives its parent
    b.add("after", 60, 70, parent=step)  # fits on the first lane again
    events = _complete(check_trace_event_format(trace_events(build_traces(b.spans))))
    lanes = {(event["name"], event["ts"]): event["tid"] for event in events}
    assert lanes == {
        ("train_step", 0): 1,
        ("load", 10_000): 1,
        ("load", 20_000): 2,
        ("forward", 30_000): 3,
        ("after", 60_000): 1,
        ("late", 95_000): 2,
    }


def test_lanes_put_a_child_on_its_parents_lane_when_it_fits():
    b = SpanBuilder()
    root = b.add("root", 0, 100)
    one = b.add("one", 10, 80, parent=root)
    two = b.add("two", 20, 90, parent=root)  # overlaps one: lane 2
    b.add("child-of-two", 30, 40, parent=two)  # fits on lane 1 too, but goes with its parent
    (trace,) = build_traces(b.spans)
    lanes = assign_lanes(list(trace.walk()))
    names = {node.span.name: lanes[node.span_id] for node in trace.walk()}
    assert names == {"root": 0, "one": 0, "two": 1, "child-of-two": 1}
    assert one.context.span_id in lanes


def test_one_process_per_trace_named_after_its_root():
    b = model_init_trace()
    step = b.add("train_step", 200, 300, trace_id=7, attributes={A.PHASE: "train"})
    b.add("loss", 210, 220, parent=step, trace_id=7)
    events = check_trace_event_format(trace_events(build_traces(b.spans)))
    names = {event["pid"]: event["args"]["name"] for event in events if event["name"] == "process_name"}
    assert names == {1: "model.init 0af76519", 2: "train_step 00000000"}
    pids = {event["args"]["trace.id"]: event["pid"] for event in _complete(events)}
    assert pids == {"0af7651916cd43dd8448eb211c80319c": 1, f"{7:032x}": 2}


def test_span_events_become_instant_events_on_the_spans_thread():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("work") as span:
        span.add_event("checkpoint", {"epoch": 3})
    events = check_trace_event_format(trace_events(build_traces(exporter.get_finished_spans())))
    (instant,) = [event for event in events if event["ph"] == "i"]
    (complete,) = _complete(events)
    assert instant["name"] == "checkpoint" and instant["args"] == {"epoch": 3}
    assert (instant["pid"], instant["tid"]) == (complete["pid"], complete["tid"])
    assert complete["ts"] <= instant["ts"] <= complete["ts"] + complete["dur"]


def test_a_real_traced_model_passes_the_format_check():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    with (
        yolospan.use_tracer_provider(provider),
        yolospan.span("model.init"),
        yolospan.phase("stride_probe", module=model, layers=True),
    ):
        model(torch.zeros(1, 3, 8, 8))
    spans = exporter.get_finished_spans()
    events = _complete(check_trace_event_format(trace_events(build_traces(spans))))
    assert sorted(event["name"] for event in events) == [
        "Conv2d #0",
        "ReLU #1",
        "forward",
        "model.init",
        "stride_probe",
    ]
    durations = {event["args"]["span.id"]: _ns(event["dur"]) for event in events}
    assert durations == {f"{s.context.span_id:016x}": s.end_time - s.start_time for s in spans}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"traceEvents": [{"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0}]}, "dur"),
        ({"traceEvents": [{"ph": "B", "name": "a", "pid": 1, "tid": 1, "ts": 0}]}, "unbalanced"),
        (
            {
                "traceEvents": [
                    {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "p"}},
                    {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "t"}},
                    {"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0, "dur": 10},
                    {"ph": "X", "name": "b", "pid": 1, "tid": 1, "ts": 5, "dur": 10},
                ]
            },
            "overlapping",
        ),
    ],
)
def test_the_format_check_rejects_broken_files(document, problem):
    with pytest.raises((AssertionError, KeyError), match=problem):
        check_trace_event_format(document)
