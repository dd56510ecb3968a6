"""Reading what can be read from trace files that may be damaged (a crash mid-write, a bad edit).

`read_trace_file` stops at the first bad line, which is right for delivery and checks. A viewer
should instead show everything it can: `salvage` decodes each line on its own and, when a line's
request does not decode as a whole, each of its spans on its own, and counts what it had to skip.
A directory stands for the trace files in it (the spool).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from yolospan.export.files import trace_files
from yolospan.export.tracefile import spans_from_request

__all__ = ["Salvage", "salvage"]

_DECODE_ERRORS = (TypeError, ValueError, AttributeError, KeyError)


@dataclass
class Salvage:
    """The spans that could be read, and a description of each piece that could not."""

    spans: list[ReadableSpan] = field(default_factory=list)
    lines_read: int = 0
    bad_files: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    bad_spans: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.bad_files or self.bad_lines or self.bad_spans)

    def problem_line(self) -> str:
        """What could not be read, in one line: counts, then the first problem as an example."""
        counts = [
            _plural(len(self.bad_files), "file"),
            _plural(len(self.bad_lines), "line"),
            _plural(len(self.bad_spans), "span"),
        ]
        first = (self.bad_files + self.bad_lines + self.bad_spans)[:1]
        text = "could not read " + _join([count for count in counts if count])
        return text + (f" (first: {first[0]})" if first else "")


def _plural(count: int, noun: str) -> str:
    return "" if count == 0 else f"{count} {noun}" + ("" if count == 1 else "s")


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def salvage(paths: Iterable[str | os.PathLike[str]]) -> Salvage:
    """Every readable span of the files (directories: their ``*.otlp.jsonl`` files), in order."""
    result = Salvage()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = trace_files(path)
            if not files:
                result.bad_files.append(f"{path}: no trace files (*.otlp.jsonl) in this directory")
            for file in files:
                _read_file(file, result)
        else:
            _read_file(path, result)
    return result


def _read_file(path: Path, result: Salvage) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        result.bad_files.append(f"{path}: no such file")
        return
    except OSError as error:
        result.bad_files.append(f"{path}: cannot read ({error.strerror or error})")
        return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            result.bad_lines.append(f"{where}: not UTF-8 text ({error.reason})")
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as error:
            result.bad_lines.append(f"{where}: not JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(request, dict) or "resourceSpans" not in request:
            result.bad_lines.append(f"{where}: not an OTLP ExportTraceServiceRequest (no 'resourceSpans')")
            continue
        result.lines_read += 1
        try:
            result.spans.extend(spans_from_request(request))
        except _DECODE_ERRORS:
            _read_spans_one_by_one(request, where, result)


def _read_spans_one_by_one(request: Mapping[str, Any], where: str, result: Salvage) -> None:
    """The request failed as a whole: decode each span in a request of its own, keeping the good ones."""
    try:
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans.get("scopeSpans") or []:
                for span in scope_spans.get("spans") or []:
                    single = {
                        "resourceSpans": [
                            {
                                **{
                                    key: value for key, value in resource_spans.items() if key != "scopeSpans"
                                },
                                "scopeSpans": [
                                    {
                                        **{
                                            key: value for key, value in scope_spans.items() if key != "spans"
                                        },
                                        "spans": [span],
                                    }
                                ],
                            }
                        ]
                    }
                    try:
                        result.spans.extend(spans_from_request(single))
                    except _DECODE_ERRORS as error:
                        text = str(error)
                        if not text.startswith("span "):  # the decoder names the span in some messages
                            name = span.get("name") if isinstance(span, dict) else None
                            text = f"span {name!r}: {text}"
                        result.bad_spans.append(f"{where}: {text}")
    except (TypeError, AttributeError, KeyError) as error:
        result.lines_read -= 1
        result.bad_lines.append(f"{where}: malformed OTLP JSON ({error})")
