"""``yolospan send``: deliver spooled spans, or trace files written with ``--out``, to a collector."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from yolospan.delivery.otlp import PROTOCOLS
from yolospan.delivery.spool import SPOOL_DIR_ENV, spool_dir

if TYPE_CHECKING:
    from yolospan.delivery import SendReport

EXIT_OK = 0
EXIT_INCOMPLETE = 1

_DESCRIPTION = f"""\
Send OTLP JSON trace files to a collector over OTLP, trace and span ids unchanged. A directory
stands for the *.otlp.jsonl files in it; without PATH, the spool: where spans go that a
collector did not acknowledge during a run (${SPOOL_DIR_ENV}, now {spool_dir()}).

A spool file is removed once all its spans were delivered; after a partial failure it keeps
only the undelivered rest, so sending again never resends what was acknowledged. Other files
are never changed. A malformed file is reported and skipped. Endpoint, headers, TLS, timeout and
compression come from the standard OTEL_EXPORTER_OTLP_* variables. 'yolospan spool' lists or
clears the spool.
Exit status: 0 when everything was delivered, 1 when something was not, 2 on a usage error.
"""

_EPILOG = """\
examples:
  yolospan send
  yolospan send ~/.cache/yolospan/spool --endpoint http://127.0.0.1:4318
  yolospan send yolov5s.otlp.jsonl --endpoint http://collector:4317 --protocol grpc
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "send",
        help="deliver spooled spans or trace files to a collector",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="trace files or directories of them (default: the spool)"
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="collector base URL, e.g. http://127.0.0.1:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="OTLP transport (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )
    parser.set_defaults(run=run, trailing="paths")


def run(args: argparse.Namespace) -> int:
    from yolospan.delivery import send
    from yolospan.delivery.endpoint import check_endpoint, check_endpoint_variables
    from yolospan.delivery.otlp import resolve_protocol

    protocol = resolve_protocol(args.protocol)
    if args.endpoint is not None:
        check_endpoint(args.endpoint, "--endpoint", protocol)
    else:
        check_endpoint_variables(protocol)
    report = send(args.paths or [spool_dir()], endpoint=args.endpoint, protocol=args.protocol)
    _print(report)
    return EXIT_OK if report.complete else EXIT_INCOMPLETE


def _print(report: SendReport) -> None:
    if not report.files:
        print("nothing to send")
        return
    for file in report.files:
        if file.malformed:
            print(f"yolospan: error: {file.problem} (file skipped)", file=sys.stderr)
        elif not file.attempted:
            print(f"{file.path}: not attempted after the failure above", file=sys.stderr)
        elif file.problem is not None:
            print(
                f"{file.path}: {file.delivered} of {file.spans} spans delivered; {file.problem}",
                file=sys.stderr,
            )
        else:
            removed = " (removed from the spool)" if file.removed else ""
            print(f"{file.path}: {file.delivered} spans delivered{removed}")
    total = len(report.files)
    complete = sum(file.complete for file in report.files)
    summary = f"{report.delivered} spans delivered to {report.endpoint}; {complete} of {total} files complete"
    counts = (
        (sum(file.malformed for file in report.files), "malformed"),
        (sum(file.attempted and not file.malformed and not file.complete for file in report.files), "failed"),
        (sum(not file.attempted for file in report.files), "not attempted"),
    )
    print(", ".join([summary, *(f"{count} {what}" for count, what in counts if count)]))
