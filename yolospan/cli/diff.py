"""``yolospan diff``: what changed between two traces, phase by phase, and a regression gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from yolospan.errors import UserError

_DESCRIPTION = """\
Compare two OTLP JSON trace files (from 'yolospan trace --out', a training run's trace, or a
collector's file exporter). Spans are aligned by their place in the tree - phase, forward number
within the phase, layer index and type - never by ids or times. Forwards of a phase that received
the same input (shapes, dtype, device, autocast, training) are one forward run several times, and
are compared as distributions: median and half the interquartile range.

For each phase a table lists every aligned span with its duration in A and in B, the ratio B/A,
and the shapes, dtypes, devices and FLOPs that differ; spans on one side only say so.
Exit status: 0, or 1 when --fail-over finds a forward or layer slower by more than PCT percent
(one line each on stderr), 2 when a file is not a trace, the traces have nothing in common, or
a phase is on one side only (choose the common ones with --phase).
"""

_EPILOG = """\
examples:
  yolospan diff fp32.jsonl bf16.jsonl
  yolospan diff yolov5n.jsonl yolov5s.jsonl --sort ratio --top 10
  yolospan diff main.jsonl branch.jsonl --phase predict --fail-over 20
  yolospan diff a.jsonl b.jsonl --json > diff.json
"""


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a percentage >= 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from yolospan.cli._args import positive_int

    parser = sub.add_parser(
        "diff",
        help="compare two trace files span by span (exit 1 on a regression with --fail-over)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", type=Path, metavar="A", help="the baseline trace file")
    parser.add_argument("b", type=Path, metavar="B", help="the trace file compared with it")
    parser.add_argument(
        "--sort",
        choices=("tree", "ratio"),
        default="tree",
        help="tree: in the order the spans ran (default); ratio: biggest change either way first",
    )
    parser.add_argument("--top", type=positive_int, metavar="N", help="show the first N rows of each phase")
    parser.add_argument(
        "--phase",
        action="append",
        metavar="NAME",
        help="compare only this phase (repeatable); every other phase is ignored",
    )
    parser.add_argument(
        "--fail-over",
        type=_percent,
        metavar="PCT",
        help="exit 1 when an aligned forward or layer is more than PCT percent slower in B",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolospan.compare import diff, regression_lines, render, select

    for path in (args.a, args.b):
        if not path.is_file():
            raise UserError(f"{path}: trace file not found")
    result = diff(args.a, args.b, phases=args.phase)
    shown = select(result, sort=args.sort, top=args.top)
    if args.json:
        print(json.dumps(shown.to_dict(), indent=2))
    else:
        print("\n".join(render(shown)))
    if args.fail_over is None:
        return 0
    failures = regression_lines(result, args.fail_over)  # the gate sees every row, not only those shown
    for line in failures:
        print(f"yolospan diff: regression: {line}", file=sys.stderr)
    return 1 if failures else 0
