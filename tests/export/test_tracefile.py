from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.errors import UserError
from yolospan.export.tracefile import TraceFileError, TraceFileExporter, read_trace_file

SCHEMA = "https://opentelemetry.io/schemas/1.26.0"


def _fields(span: ReadableSpan) -> dict[str, Any]:
    """Every field a span carries, with Python types kept (tuple vs list, int vs float)."""

    def typed(attributes: Any) -> dict[str, tuple[str, Any]]:
        return {key: (type(value).__name__, value) for key, value in dict(attributes or {}).items()}

    context = span.get_span_context()
    assert context is not None
    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        # Only "sampled": the official encoders do not write the W3C flags (the level-2 "random"
        # bit the SDK sets is lost on any OTLP export, not just in files).
        "sampled": context.trace_flags.sampled,
        "trace_state": context.trace_state.to_header(),
        "is_remote": context.is_remote,
        "parent": (span.parent.span_id, span.parent.is_remote) if span.parent else None,
        "kind": span.kind,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": typed(span.attributes),
        "array_item_types": {
            key: [type(item).__name__ for item in value]
            for key, value in (span.attributes or {}).items()
            if isinstance(value, tuple)
        },
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, e.timestamp, typed(e.attributes)) for e in span.events],
        "links": [
            (link.context.trace_id, link.context.span_id, link.context.is_remote, typed(link.attributes))
            for link in span.links
        ],
        "resource": (typed(span.resource.attributes), span.resource.schema_url),
        "scope": (scope.name, scope.version, scope.schema_url, typed(scope.attributes)) if scope else None,
    }


def _record_everything(path: Path) -> list[ReadableSpan]:
    """Spans exercising every field: yolospan forwards and layers, errors, events, links, limits."""
    memory = InMemorySpanExporter()
    resource = Resource({"service.name": "roundtrip", "host.arch": "x86_64", "pid": 42}, SCHEMA)
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_attributes=32, max_events=2))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(TraceFileExporter(path)))

    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten())
    with yolospan.phase("stride_probe", module=model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 4, 4))

    tracer = provider.get_tracer("custom", "2.1", schema_url=SCHEMA, attributes={"scope.flag": True})
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    remote_parent = trace.set_span_in_context(NonRecordingSpan(remote))
    linked = SpanContext(0x1234, 0x5678, is_remote=True, trace_state=TraceState([("vendor", "v1")]))
    with tracer.start_as_current_span(
        "client.call",
        context=remote_parent,
        kind=SpanKind.CLIENT,
        links=[Link(linked, {"link.why": "retry"})],
        attributes={
            "f": 0.5,
            "b": False,
            "floats": [1.5, -2.0],
            "bools": [True, False],
            "strings": ["a", ""],
            "ints": [0, -1, 2**40],
            "empty": "",
        },
    ) as current:
        current.add_event("checkpoint", {"step": 3})
        for index in range(30):
            current.set_attribute(f"many.{index}", index)  # beyond max_attributes: counted as dropped
    with pytest.raises(RuntimeError), tracer.start_as_current_span("failing"):
        raise RuntimeError("exploded")
    with tracer.start_as_current_span("busy") as busy:
        for index in range(4):
            busy.add_event(f"tick {index}")  # beyond max_events: counted as dropped
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_write_then_read_gives_the_same_spans(tmp_path):
    path = tmp_path / "nested" / "dir" / "trace.jsonl"
    original = _record_everything(path)
    assert len(original) == 7  # phase, forward, 2 layers, client.call, failing, busy

    read = read_trace_file(path)

    fields = {span.name: _fields(span) for span in read}  # the data covers what is easy to lose
    assert fields["client.call"]["dropped"][0] > 0 and fields["busy"]["dropped"][1] == 2
    assert fields["client.call"]["parent"] == (0xDEF, True)
    assert fields["client.call"]["links"][0][3] == {"link.why": ("str", "retry")}
    assert fields["failing"]["events"][0][0] == "exception"
    assert fields[A.SPAN_FORWARD]["array_item_types"][A.INPUT_SHAPE] == ["int"] * 4

    assert [_fields(span) for span in read] == [_fields(span) for span in original]
    # And byte-identical once encoded for a collector: nothing is lost on the way to `send`.
    assert encode_spans(read) == encode_spans(original)


def test_the_written_lines_follow_the_otlp_json_encoding(tmp_path):
    path = tmp_path / "trace.jsonl"
    original = _record_everything(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(original)  # SimpleSpanProcessor: one request per span, one per line
    by_name = {
        json_span["name"]: json_span
        for line in lines
        for json_span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    }
    forward = next(span for span in original if span.name == A.SPAN_FORWARD)
    span = by_name[A.SPAN_FORWARD]
    context = forward.get_span_context()
    assert span["traceId"] == f"{context.trace_id:032x}"  # hex, not base64
    assert span["spanId"] == f"{context.span_id:016x}"
    assert span["parentSpanId"] == f"{forward.parent.span_id:016x}"
    assert span["kind"] == 1  # enums are integers
    shape = next(a for a in span["attributes"] if a["key"] == A.INPUT_SHAPE)["value"]
    assert shape == {
        "arrayValue": {"values": [{"intValue": "1"}, {"intValue": "3"}, {"intValue": "4"}, {"intValue": "4"}]}
    }
    failing = by_name["failing"]
    assert failing["status"] == {"code": 2, "message": "RuntimeError: exploded"}


def test_runs_append_to_the_same_file(tmp_path):
    path = tmp_path / "trace.jsonl"
    for run in range(2):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(TraceFileExporter(path)))
        with provider.get_tracer("t").start_as_current_span(f"run {run}"):
            pass
        provider.shutdown()
    assert [span.name for span in read_trace_file(path)] == ["run 0", "run 1"]


def test_blank_lines_are_skipped_and_an_empty_file_has_no_spans(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    assert read_trace_file(path) == []


def test_an_unwritable_path_is_a_user_error(tmp_path):
    with pytest.raises(TraceFileError, match="cannot write trace file"):
        TraceFileExporter(tmp_path)  # a directory


def _line(span: dict[str, Any]) -> str:
    base = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x"}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**base, **span}]}]}]})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not an OTLP ExportTraceServiceRequest (no 'resourceSpans')"),
        ('{"data": []}', "no 'resourceSpans'"),
        ('{"resourceSpans": {"a": 1}}', "malformed OTLP JSON"),
        (_line({"traceId": "zz"}), "malformed OTLP JSON: Invalid hex string"),
        (_line({"traceId": "C6SoUSaeqn8="}), "malformed OTLP JSON"),  # base64 is not OTLP/JSON
        (_line({"spanId": "b7ad6b71"}), "span 'x': spanId must be 16 hex digits, got 8"),
        (_line({"spanId": "0000000000000000"}), "spanId is all zeros"),
        (_line({"parentSpanId": "abc"}), "malformed OTLP JSON"),
        (_line({"kind": 9}), "malformed OTLP JSON"),
        (_line({"kind": "SPAN_KIND_SERVER"}), "malformed OTLP JSON"),
        (_line({"attributes": [{"key": "a", "value": {"intValue": "x"}}]}), "Invalid int64 value"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(_line({}) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError) as raised:
        read_trace_file(path)
    text = str(raised.value)
    assert text.startswith(f"{path}:3: ")
    assert message in text
    assert "\n" not in text
    assert isinstance(raised.value, UserError)


def test_a_missing_or_binary_file_is_a_trace_file_error(tmp_path):
    with pytest.raises(TraceFileError, match="does not exist"):
        read_trace_file(tmp_path / "missing.jsonl")
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"\x80\x02\xff\xfe")
    with pytest.raises(TraceFileError, match="not UTF-8"):
        read_trace_file(binary)
