"""``yolospan check``: assert on saved trace files with the selectors of the pytest plugin."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from yolospan.errors import UserError

_COMPARISON = re.compile(r"[=<>]")

_DESCRIPTION = """\
Count the spans in OTLP JSON trace files (from 'yolospan trace --out' or a collector's file
exporter) that match each expectation and compare the counts. All files are read together as
one recording. Exit status: 0 when every expectation holds, 1 when one does not (with the
span tree and the nearest candidates), 2 when a file or an expectation is malformed.

Which argument is which: an argument naming an existing file is a trace file; otherwise one
containing '=', '<' or '>' (every comparison does) is an expectation; anything else is taken as
a trace file (and reported missing). -e/--expect marks an expectation explicitly. Options may
go anywhere, also between and after the positional arguments.

Expectation grammar: SELECTOR OP COUNT, with SELECTOR = NAME[KEY=VALUE, ...]. NAME is a span
name or '*'. KEY is a span-contract key with or without 'yolospan.' (phase, input.shape,
layer.index, output.0.shape) or any key in quotes. Relations: = != ~ (regex) > >= < <=, or
'!KEY' (absent) and bare 'KEY' (present). VALUE: true/false, numbers, shapes such as
1x3x640x480 (* is any one dim, ... any run), [a, b] lists, bare words or quoted strings.
OP: == != >= <= > <.
"""

_EPILOG = """\
examples:
  yolospan check yolov5s.otlp.jsonl 'model.init == 1' 'forward[phase=stride_probe] == 1'
  yolospan check run.jsonl 'forward[phase=amp_check, input.shape=1x3x640x480] == 2'
  yolospan check run.jsonl -e 'forward[device=cpu, autocast=float16] == 0' -e 'forward[flops>0] >= 1'
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="check span counts in trace files (exit 1 with a report when one is off)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "arguments",
        nargs="*",
        metavar="TRACEFILE|EXPECTATION",
        help="trace files (OTLP JSON lines) followed by expectations such as 'forward[phase=fuse] == 0'",
    )
    parser.add_argument(
        "-e",
        "--expect",
        action="append",
        default=[],
        metavar="EXPECTATION",
        help="an expectation, whatever it looks like (repeatable)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    parser.set_defaults(run=run, trailing="arguments")


def split_arguments(arguments: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Trace files and expectations, by the rule in the help: existing file, then '=', '<' or '>'."""
    files: list[Path] = []
    expectations: list[str] = []
    for argument in arguments:
        if Path(argument).is_file() or not _COMPARISON.search(argument):
            files.append(Path(argument))
        else:
            expectations.append(argument)
    return files, expectations


def run(args: argparse.Namespace) -> int:
    from yolospan.export.tracefile import read_trace_file
    from yolospan.testing import SpanList, parse_expectation
    from yolospan.testing._report import expectations_failed

    files, texts = split_arguments(args.arguments)
    texts += args.expect
    if not files:
        raise UserError("no trace file given (yolospan check TRACEFILE... EXPECTATION...)")
    if not texts:
        raise UserError("no expectation given, e.g. 'forward[phase=stride_probe] == 1'")
    expectations = [parse_expectation(text) for text in texts]
    readable = [span for path in files for span in read_trace_file(path)]
    spans = SpanList.from_readable(readable, source=", ".join(str(path) for path in files))
    outcomes = [expectation.evaluate(spans) for expectation in expectations]
    for outcome in outcomes:
        if not (args.quiet and outcome.holds):
            verdict = "ok  " if outcome.holds else "FAIL"
            text = outcome.expectation.text or outcome.expectation.describe()
            print(f"{verdict}  {text}  (found {len(outcome.matches)})")
    failed = [outcome for outcome in outcomes if not outcome.holds]
    if not failed:
        return 0
    print()
    print(expectations_failed(failed, spans))
    return 1
