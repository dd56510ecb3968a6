"""The spool directory and its files: where, how named, written whole or not at all."""

from __future__ import annotations

import os
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yolospan.delivery import spool as spool_module
from yolospan.delivery.spool import (
    LINE_SPANS,
    default_spool_dir,
    in_spool,
    replace_lines,
    spool_dir,
    trace_files,
    write_spool_file,
)
from yolospan.export.tracefile import read_trace_file


def _spans(count: int):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"s{index}", attributes={"i": index, "shape": [1, 3, 8, 8]}):
            pass
    return list(exporter.get_finished_spans())


def _ids(spans):
    return [(span.context.trace_id, span.context.span_id) for span in spans]


# --- where ----------------------------------------------------------------------------------------


def test_yolospan_spool_dir_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(tmp_path / "here"))
    assert spool_dir() == tmp_path / "here"


def test_without_the_variable_the_spool_is_in_the_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("YOLOSPAN_SPOOL_DIR")
    assert spool_dir() == default_spool_dir()
    assert default_spool_dir().parts[-2:] == ("yolospan", "spool")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG convention applies to other Unixes")
def test_xdg_cache_home_is_honoured_when_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_spool_dir() == tmp_path / "xdg" / "yolospan" / "spool"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignore a relative path
    assert default_spool_dir() == tmp_path / "home" / ".cache" / "yolospan" / "spool"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_spool_dir() == tmp_path / "home" / ".cache" / "yolospan" / "spool"


# --- files ----------------------------------------------------------------------------------------


def test_a_spool_file_is_a_trace_file_with_the_same_spans(spool):
    spans = _spans(3)
    path = write_spool_file(spans, spool)
    assert path.parent == spool and path.name.endswith(".otlp.jsonl")
    read = read_trace_file(path)
    assert _ids(read) == _ids(spans)
    assert [dict(span.attributes) for span in read] == [dict(span.attributes) for span in spans]


def test_big_batches_are_split_into_lines_of_one_request_each(spool):
    spans = _spans(LINE_SPANS * 2 + 1)
    path = write_spool_file(spans, spool)
    assert len(path.read_text().splitlines()) == 3
    assert _ids(read_trace_file(path)) == _ids(spans)


def test_names_sort_by_time_and_never_repeat(spool, monkeypatch):
    spans = _spans(1)
    paths = [write_spool_file(spans, spool) for _ in range(20)]
    assert len(set(paths)) == 20
    assert trace_files(spool) == paths  # oldest first
    pid = str(os.getpid())
    assert all(path.name.split("-")[1] == pid for path in paths)


def test_a_failed_write_leaves_nothing_behind(spool, monkeypatch):
    spool.mkdir()

    def broken(_spans):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "_encode", broken)
    with pytest.raises(OSError, match="No space left"):
        write_spool_file(_spans(1), spool)
    assert list(spool.iterdir()) == []


def test_an_unwritable_spool_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        write_spool_file(_spans(1), blocker / "spool")


def test_replace_lines_rewrites_the_file_whole(spool):
    path = write_spool_file(_spans(LINE_SPANS + 1), spool)
    _, second = path.read_text().splitlines()
    replace_lines(path, [second])
    assert path.read_text() == second + "\n"
    assert [entry.name for entry in spool.iterdir()] == [path.name]  # no temporary file left


def test_trace_files_lists_only_finished_trace_files(spool):
    path = write_spool_file(_spans(1), spool)
    (spool / f".{path.name}.abcd.tmp").write_text("{}")  # a write in progress elsewhere
    (spool / "notes.txt").write_text("")
    (spool / "nested.otlp.jsonl").mkdir()
    assert trace_files(spool) == [path]


def test_in_spool_means_directly_inside_the_spool(spool, tmp_path):
    path = write_spool_file(_spans(1), spool)
    assert in_spool(path, spool)
    assert in_spool(spool / ".." / "spool" / path.name, spool)
    assert not in_spool(tmp_path / path.name, spool)
    assert not in_spool(spool / "notes.txt", spool)
