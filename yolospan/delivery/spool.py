"""The spool: a directory of OTLP JSON trace files holding spans a collector did not acknowledge.

Files are trace files like ``yolospan trace --out`` writes (one ``ExportTraceServiceRequest`` per
line), so ``yolospan send``, ``yolospan check`` and Jaeger's upload read them unchanged. Every file
appears whole or not at all (written to a hidden temporary file, then renamed), and names sort by
creation time and cannot collide between processes: ``<UTC time>-<pid>-<n>.otlp.jsonl``
(e.g. ``20250102T030405123456Z-4242-000001.otlp.jsonl``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

from yolospan.export.files import TRACE_FILE_SUFFIX, trace_files

__all__ = [
    "LINE_SPANS",
    "SPOOL_DIR_ENV",
    "SPOOL_SUFFIX",
    "default_spool_dir",
    "in_spool",
    "replace_lines",
    "spool_dir",
    "trace_files",
    "write_spool_file",
]

SPOOL_DIR_ENV: Final = "YOLOSPAN_SPOOL_DIR"
"""Environment variable naming the spool directory (default: `default_spool_dir`)."""

SPOOL_SUFFIX: Final = TRACE_FILE_SUFFIX
"""Suffix of every spool file; ``yolospan send DIR`` delivers the files with it."""

LINE_SPANS: Final = 512
"""Spans per line at most: one line is one export request, the batch processor's default batch size."""

_sequence = itertools.count(1)  # per process; with the pid and the time it makes names unique


def default_spool_dir() -> Path:
    """``yolospan/spool`` in the user's cache directory, by the platform's convention.

    ``$XDG_CACHE_HOME`` (or ``~/.cache``) on Linux and other Unixes, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        # The XDG spec says to ignore a relative path.
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "yolospan" / "spool"


def spool_dir() -> Path:
    """The spool directory: ``$YOLOSPAN_SPOOL_DIR`` when set, else `default_spool_dir`. Not created."""
    configured = os.environ.get(SPOOL_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else default_spool_dir()


def in_spool(path: Path, directory: Path) -> bool:
    """Whether ``path`` is a spool file directly inside ``directory`` (symlinks resolved)."""
    return path.name.endswith(SPOOL_SUFFIX) and path.resolve().parent == directory.resolve()


def write_spool_file(spans: Sequence[ReadableSpan], directory: Path) -> Path:
    """Write ``spans`` to a new file in ``directory`` (created if needed); returns its path.

    Raises ``OSError`` when the file cannot be written; nothing partial is left behind then.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{stamp}-{os.getpid()}-{next(_sequence):06d}{SPOOL_SUFFIX}"
    lines = (_encode(spans[start : start + LINE_SPANS]) for start in range(0, len(spans), LINE_SPANS))
    _write_atomically(path, lines)
    return path


def replace_lines(path: Path, lines: Sequence[str]) -> None:
    """Atomically replace ``path`` with ``lines`` (each a JSON line without its newline)."""
    _write_atomically(path, lines)


def _encode(spans: Sequence[ReadableSpan]) -> str:
    # The same encoding as the file exporter (and so as `yolospan trace --out`).
    from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans  # not for --help

    return json.dumps(encode_spans(spans).to_dict(), separators=(",", ":"))


def _write_atomically(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden and without the spool suffix, so a concurrent `yolospan send DIR` never picks it up.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as file:
            for line in lines:
                file.write(line)
                file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows fsync on a directory (POSIX)."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
