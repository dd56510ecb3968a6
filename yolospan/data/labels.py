"""YOLO label files: one ``class cx cy w h`` line per object, coordinates normalised to the image.

Parsing is strict per line and forgiving per file: a bad line is skipped with a `LabelProblem`
naming the file and the line, and the file's other lines are kept. The checks are upstream's
(five numbers, an integer class inside ``nc``, coordinates in [0, 1], a positive size).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LabelProblem", "format_label_line", "parse_label_lines", "read_label_file"]

_COLUMNS = 5
_TOLERANCE = 1e-6  # rounding in a written "1.000000" must not reject a box touching the border


@dataclass(frozen=True)
class LabelProblem:
    """A line that was skipped (``line`` counts from 1; 0 means the whole file)."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


def parse_label_lines(
    lines: Sequence[str], *, path: str = "<labels>", nc: int | None = None
) -> tuple[np.ndarray, list[LabelProblem]]:
    """The valid rows as an ``[n, 5]`` float32 array (class, cx, cy, w, h) and the skipped lines."""
    rows: list[list[float]] = []
    problems: list[LabelProblem] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        row, reason = _parse_row(text, nc)
        if reason is not None:
            problems.append(LabelProblem(path, number, reason))
        else:
            assert row is not None
            rows.append(row)
    array = np.array(rows, dtype=np.float32).reshape(-1, _COLUMNS)
    return array, problems


def read_label_file(
    path: str | os.PathLike[str], *, nc: int | None = None
) -> tuple[np.ndarray, list[LabelProblem]]:
    """`parse_label_lines` of a file; a missing file means no objects, an unreadable one a problem."""
    label_path = Path(path)
    if not label_path.exists():
        return np.zeros((0, _COLUMNS), dtype=np.float32), []
    try:
        text = label_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = f"cannot read the label file ({getattr(error, 'strerror', None) or error})"
        return np.zeros((0, _COLUMNS), dtype=np.float32), [LabelProblem(str(label_path), 0, reason)]
    return parse_label_lines(text.splitlines(), path=str(label_path), nc=nc)


def format_label_line(cls: int, cx: float, cy: float, w: float, h: float) -> str:
    """One label line as the writers of YOLO datasets produce it (six decimals)."""
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def _parse_row(text: str, nc: int | None) -> tuple[list[float] | None, str | None]:
    fields = text.split()
    if len(fields) != _COLUMNS:
        return None, f"expected 5 values (class cx cy w h), got {len(fields)}"
    try:
        values = [float(field) for field in fields]
    except ValueError:
        return None, f"not a number in {text!r}"
    if not all(math.isfinite(v) for v in values):
        return None, f"non-finite value in {text!r}"
    cls, cx, cy, w, h = values
    if cls < 0 or cls != int(cls):
        return None, f"class must be a non-negative integer, got {fields[0]!r}"
    if nc is not None and cls >= nc:
        return None, f"class {int(cls)} is outside the dataset's {nc} classes (0-{nc - 1})"
    if any(v < -_TOLERANCE or v > 1 + _TOLERANCE for v in (cx, cy, w, h)):
        return None, "coordinates must be normalised to [0, 1]"
    if w <= 0 or h <= 0:
        return None, f"box width and height must be positive, got {w:g} x {h:g}"
    clipped = [min(max(v, 0.0), 1.0) for v in (cx, cy, w, h)]
    return [float(int(cls)), *clipped], None
