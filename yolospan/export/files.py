"""How yolospan names the trace files it writes on its own, and finding them in a folder.

Kept apart from `tracefile` (which loads the OTLP JSON encoder) so that naming or listing trace
files, as `yolospan --help` does for the spool, loads nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["TRACE_FILE_SUFFIX", "trace_files"]

TRACE_FILE_SUFFIX: Final = ".otlp.jsonl"
"""The ending of the trace files yolospan names itself (the spool's files among them)."""


def trace_files(directory: Path) -> list[Path]:
    """The ``*.otlp.jsonl`` files in ``directory`` (not below it), oldest name first."""
    return sorted(p for p in directory.iterdir() if p.name.endswith(TRACE_FILE_SUFFIX) and p.is_file())
