"""The ``yolospan`` command: each subcommand lives in its own module with ``register`` and ``run``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from yolospan._version import __version__
from yolospan.errors import UserError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _commands() -> list[ModuleType]:
    from yolospan.cli import check, data, diff, send, show, spool, trace, train

    return [trace, check, send, spool, train, data, show, diff]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the problem and where to read more, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="yolospan",
        description=(
            "See every forward a YOLOv5 model runs - while it is created, profiled, checked and trained - "
            "as OpenTelemetry spans with shapes, dtypes, devices and FLOPs."
        ),
        epilog="Run 'yolospan COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"yolospan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log yolospan's own diagnostics")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _commands():
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; bad input exits 2 with one line on stderr, no traceback."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _take_trailing_positionals(parser, args, extra)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="yolospan: %(levelname)s: %(message)s",
    )
    from yolospan.signals import EXIT_TERMINATED, Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            code: int = args.run(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows up here at the latest
    except BrokenPipeError:
        return _stdout_closed()
    except UserError as error:
        print(f"yolospan: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("yolospan: terminated (SIGTERM); open spans ended as errors and were flushed", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("yolospan: interrupted", file=sys.stderr)
        return 130
    return code


def _take_trailing_positionals(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """Positionals typed after an option (``check run.jsonl -q 'model.init == 1'``) join the list
    the command names with ``set_defaults(trailing=DEST)``; anything else is argparse's usual error."""
    dest = getattr(args, "trailing", None)
    if extra and dest is not None and not any(text.startswith("-") for text in extra):
        getattr(args, dest).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")


def _stdout_closed() -> int:
    """The reader of stdout went away (``yolospan trace ... | head``): stop without a traceback.

    The Python documentation's recipe for SIGPIPE: point stdout at devnull so the interpreter's
    final flush does not fail again, and exit 1 as Python does on EPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
