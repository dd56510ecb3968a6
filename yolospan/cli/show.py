"""``yolospan show``: look at saved trace files without a server (terminal tree, HTML, Trace Event)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from yolospan.cli._args import positive_int
from yolospan.errors import UserError

if TYPE_CHECKING:
    from yolospan.export.spantree import Trace

_DESCRIPTION = """\
Print the span tree of OTLP JSON trace files (from 'yolospan trace --out', 'yolospan train
--out', a spool directory or a collector's file exporter) as the live console prints it, each
trace closed by a summary: spans, forwards by phase, FLOPs and time per phase.

--html writes one self-contained page (no network, nothing external) with a waterfall per trace;
--chrome writes the Chrome Trace Event format that Perfetto UI, chrome://tracing and speedscope
open. With either, the tree is not printed; both hold every span of the selected traces.

Damaged files: every span that can be read is shown, and what could not be read is counted in
one line on stderr. Exit status 2 only when nothing at all could be read (or an option is wrong).
"""

_EPILOG = """\
examples:
  yolospan show yolov5s.otlp.jsonl
  yolospan show runs/train.otlp.jsonl --phase val --max-depth 2
  yolospan show yolov5s.otlp.jsonl --layers --trace 4bf92f35
  yolospan show yolov5s.otlp.jsonl --html yolov5s.html --chrome yolov5s.trace.json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "show",
        help="show trace files: the console tree, an HTML waterfall or a Trace Event file",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="trace files, or directories of them (a spool)"
    )
    parser.add_argument(
        "--trace",
        action="append",
        default=[],
        metavar="ID",
        help="only the traces whose id starts with ID (hex, repeatable)",
    )
    parser.add_argument(
        "--phase", metavar="NAME", help="only the spans of this phase (with their parents), e.g. amp_check"
    )
    parser.add_argument("--layers", action="store_true", help="also print layer spans in the tree")
    parser.add_argument(
        "--max-depth", type=positive_int, metavar="N", help="print N levels of the tree (1: roots only)"
    )
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="write an HTML waterfall")
    parser.add_argument("--chrome", type=Path, metavar="OUT.json", help="write Chrome Trace Event JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolospan.export.salvage import salvage
    from yolospan.export.spantree import build_traces, select_phase, select_traces

    read = salvage(args.files)
    if not read.spans:
        raise UserError(read.problem_line() if not read.complete else "no spans in " + _names(args.files))
    if not read.complete:
        print(f"yolospan: warning: {read.problem_line()}", file=sys.stderr)
    traces = build_traces(read.spans)
    if args.trace:
        traces = select_traces(traces, args.trace)
        if not traces:
            raise UserError(f"no trace id starting with {' or '.join(args.trace)} in {_names(args.files)}")
    if args.phase is not None:
        traces = select_phase(traces, args.phase)
        if not traces:
            raise UserError(f"no span of phase {args.phase!r} in {_names(args.files)}")

    if args.html is None and args.chrome is None:
        _print_trees(traces, args)
        return 0

    spans = sum(len(trace.spans) for trace in traces)
    what = f"{len(traces)} trace" + ("" if len(traces) == 1 else "s") + f", {spans} spans"
    if args.html is not None:
        from yolospan.export.html import render_html

        _write(args.html, render_html(traces, title=_names(args.files)))
        print(f"wrote {args.html} ({what})")
    if args.chrome is not None:
        from yolospan.export.chrome import dump_trace_events

        _write(args.chrome, dump_trace_events(traces))
        print(f"wrote {args.chrome} ({what})")
    return 0


def _print_trees(traces: list[Trace], args: argparse.Namespace) -> None:
    from yolospan.export.console import charset_for, use_color
    from yolospan.export.tree import render_summary, render_trace

    charset, color = charset_for(sys.stdout), use_color(sys.stdout)
    try:
        for number, trace in enumerate(traces):
            if number:
                print()
            for line in render_trace(
                trace, layers=args.layers, max_depth=args.max_depth, charset=charset, color=color
            ):
                print(line)
            for line in render_summary(trace):
                print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # `yolospan show big.jsonl | head`: the reader has what it wanted. Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _names(paths: list[Path]) -> str:
    return ", ".join(str(path) for path in paths)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the file ({error.strerror or error})") from None
