"""Argument types and file handling shared by the subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from yolospan.errors import UserError

__all__ = [
    "choose_exporters",
    "exporter_list",
    "non_negative_int",
    "positive_int",
    "recording_off",
    "start_output_file",
    "written",
]

_OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def _int_at_least(text: str, minimum: int, kind: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "non-negative")


def exporter_list(text: str) -> tuple[str, ...]:
    from yolospan.otel import parse_exporters

    try:
        return parse_exporters(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def start_output_file(path: Path) -> None:
    """One run, one file: an old file at ``path`` is replaced rather than appended to."""
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:  # mkdir would say "File exists", which is not the problem
        raise UserError(f"{path}: cannot write the file ({blocking} is not a directory)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the file ({error.strerror or error})") from None


def choose_exporters(
    requested: tuple[str, ...] | None, out: Path | None, *, console: bool, metrics: bool = False
) -> tuple[str, ...]:
    """The explicit list, checked against ``--out``; or the default: a file with ``--out``, OTLP
    when an endpoint is configured, and the console always (``console=True``) or when neither.
    With OTLP, the endpoint variables are checked too (``metrics``: the metrics one as well)."""
    if requested is not None:
        if "file" in requested and out is None:
            raise UserError("--exporter file needs --out PATH")
        if out is not None and "file" not in requested:
            raise UserError("--out needs the file exporter; add 'file' to --exporter")
        chosen = list(requested)
    else:
        chosen = ["console"] if console else []
        if out is not None:
            chosen.append("file")
        if any(os.environ.get(name) for name in _OTLP_ENDPOINT_VARS):
            chosen.append("otlp")
    if "otlp" in chosen:
        from yolospan.delivery.endpoint import check_endpoint_variables
        from yolospan.delivery.otlp import resolve_protocol

        check_endpoint_variables(resolve_protocol(), metrics=metrics)
    return tuple(chosen) or ("console",)


def written(path: Path, what: str) -> str:
    """``"trace written to run.jsonl"``, or, for a file left empty, that nothing was recorded and why."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = True
    if not empty:
        return f"{what} written to {path}"
    reason = _not_recording_reason()
    return f"nothing recorded{f' ({reason})' if reason else ''}: {path} is empty"


def recording_off() -> str | None:
    """Why nothing will be recorded whatever runs (the SDK or the sampler switched off), else None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "OTEL_SDK_DISABLED=true switches the OpenTelemetry SDK off"
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "").strip()
    if sampler.lower() in ("always_off", "parentbased_always_off"):
        return f"OTEL_TRACES_SAMPLER={sampler} samples no trace"
    return None


def _not_recording_reason() -> str | None:
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "").strip()
    return recording_off() or (f"OTEL_TRACES_SAMPLER={sampler} sampled no trace" if sampler else None)
