"""``yolospan spool``: list or clear the spans a collector did not take (``yolospan send`` delivers them)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from yolospan.delivery.spool import SPOOL_DIR_ENV, spool_dir
from yolospan.errors import UserError

_DESCRIPTION = f"""\
The spool holds the spans a collector did not acknowledge during a run, as OTLP JSON
trace files: ${SPOOL_DIR_ENV}, now {spool_dir()}.
'yolospan spool' (or 'yolospan spool list') lists its files with their span counts;
'yolospan spool clear' deletes them, spans and all, when they are not wanted any more.
'yolospan send' delivers them instead.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "spool",
        help="list or clear spooled spans (what 'yolospan send' would deliver)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", nargs="?", choices=("list", "clear"), default="list", help="list (default) or clear"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolospan.delivery.spool import trace_files

    directory = spool_dir()
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory}: the spool ({SPOOL_DIR_ENV}) is not a directory")
    files = trace_files(directory) if directory.is_dir() else []
    if not files:
        print(f"the spool is empty ({directory})")
        return 0
    counts = {path: _span_count(path) for path in files}
    if args.action == "clear":
        for path in files:
            path.unlink(missing_ok=True)
        print(f"removed {_files(files)} ({_spans(counts.values())}) from {directory}")
        return 0
    for path, count in counts.items():
        print(f"{path}  {'malformed' if count is None else _spans([count])}  {path.stat().st_size:,} bytes")
    print(f"{_spans(counts.values())} in {_files(files)}; 'yolospan send' delivers them")
    return 0


def _span_count(path: Path) -> int | None:
    from yolospan.export.tracefile import TraceFileError, read_trace_file

    try:
        return len(read_trace_file(path))
    except TraceFileError:
        return None


def _spans(counts: Iterable[int | None]) -> str:
    total = sum(count for count in counts if count is not None)
    return f"{total} span{'s' if total != 1 else ''}"


def _files(files: list[Path]) -> str:
    return f"{len(files)} file{'s' if len(files) != 1 else ''}"
