from __future__ import annotations

import json

from handbuilt_spans import SpanBuilder, model_init_trace, write_trace_file
from yolospan.export.salvage import salvage


def _names(spans) -> list[str]:
    return sorted(span.name for span in spans)


ALL = sorted(span.name for span in model_init_trace().spans)


def test_an_intact_file_reads_completely(tmp_path):
    read = salvage([write_trace_file(tmp_path / "t.jsonl", model_init_trace())])
    assert read.complete
    assert _names(read.spans) == ALL
    assert read.lines_read == 3


def test_a_truncated_last_line_loses_only_that_line(tmp_path):
    path = write_trace_file(tmp_path / "t.jsonl", model_init_trace())
    text = path.read_text()
    path.write_text(text[: len(text) - 200])  # a crash while the last batch was written
    read = salvage([path])
    assert len(read.spans) == 8  # two lines of four
    assert len(read.bad_lines) == 1
    assert read.bad_lines[0].startswith(f"{path}:3: not JSON (")
    assert read.problem_line() == f"could not read 1 line (first: {read.bad_lines[0]})"


def test_garbage_lines_and_bad_bytes_are_counted_and_skipped(tmp_path):
    path = write_trace_file(tmp_path / "t.jsonl", model_init_trace())
    good = path.read_bytes().splitlines()
    path.write_bytes(
        b"\n".join([good[0], b"hello", b"\xff\xfe not utf-8", b"[1, 2]", good[1], good[2]]) + b"\n"
    )
    read = salvage([path])
    assert _names(read.spans) == ALL
    assert read.bad_lines == [
        f"{path}:2: not JSON (Expecting value at column 1)",
        f"{path}:3: not UTF-8 text (invalid start byte)",
        f"{path}:4: not an OTLP ExportTraceServiceRequest (no 'resourceSpans')",
    ]
    assert read.problem_line() == (
        f"could not read 3 lines (first: {path}:2: not JSON (Expecting value at column 1))"
    )


def test_one_bad_span_does_not_cost_the_rest_of_its_line(tmp_path):
    path = write_trace_file(tmp_path / "t.jsonl", model_init_trace(), per_line=10)
    request = json.loads(path.read_text())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    broken = next(span for span in spans if span["name"] == "Upsample")
    broken["spanId"] = "abc"  # not 16 hex digits
    path.write_text(json.dumps(request) + "\n")
    read = salvage([path])
    assert _names(read.spans) == sorted(name for name in ALL if name != "Upsample")
    assert read.bad_lines == []
    assert len(read.bad_spans) == 1
    assert read.bad_spans[0].startswith(f"{path}:1: span 'Upsample': ")
    assert read.problem_line().startswith("could not read 1 span (first: ")


def test_missing_files_and_empty_directories_are_counted(tmp_path):
    good = write_trace_file(tmp_path / "t.jsonl", model_init_trace())
    empty = tmp_path / "spool"
    empty.mkdir()
    read = salvage([tmp_path / "nope.jsonl", good, empty])
    assert _names(read.spans) == ALL
    assert read.bad_files == [
        f"{tmp_path / 'nope.jsonl'}: no such file",
        f"{empty}: no trace files (*.otlp.jsonl) in this directory",
    ]
    assert read.problem_line() == f"could not read 2 files (first: {tmp_path / 'nope.jsonl'}: no such file)"


def test_a_directory_is_read_as_a_spool(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    builder = model_init_trace()
    first, second = SpanBuilder(), SpanBuilder()
    first.spans, second.spans = builder.spans[:5], builder.spans[5:]
    write_trace_file(spool / "20260101T000000000000Z-1-000001.otlp.jsonl", first)
    write_trace_file(spool / "20260101T000000000001Z-1-000002.otlp.jsonl", second)
    (spool / "notes.txt").write_text("not a trace file")
    read = salvage([spool])
    assert read.complete
    assert _names(read.spans) == ALL


def test_mixed_problems_make_one_line(tmp_path):
    path = write_trace_file(tmp_path / "t.jsonl", model_init_trace(), per_line=10)
    request = json.loads(path.read_text())
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "00"
    path.write_text(json.dumps(request) + "\nnot json\n")
    read = salvage([path, tmp_path / "gone.jsonl"])
    line = read.problem_line()
    assert line.startswith("could not read 1 file, 1 line and 1 span (first: ")
    assert "\n" not in line
