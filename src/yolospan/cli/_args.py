"""Argument types and file handling shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolospan.errors import UserError

__all__ = ["exporter_list", "positive_int", "start_output_file"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def exporter_list(text: str) -> tuple[str, ...]:
    from yolospan.otel import parse_exporters

    try:
        return parse_exporters(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def start_output_file(path: Path) -> None:
    """One run, one file: an old file at ``path`` is replaced rather than appended to."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the file ({error.strerror or error})") from None
