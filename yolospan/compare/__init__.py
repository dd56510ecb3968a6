"""Compare what ran: two traces aligned by their place in the tree, not by ids or times.

`diff` pairs the phase spans, forwards and layers of trace A and trace B by (phase, forward
number within the phase, layer index and type) and returns typed rows: durations on both sides
(median and spread where a call ran several times), their ratio, and the shapes, dtypes,
devices and FLOPs that differ. ``yolospan diff`` prints them; see ``docs/diff.md``.
"""

from __future__ import annotations

from yolospan.compare._diff import (
    AttributeChange,
    DiffError,
    DiffRow,
    PhaseDiff,
    Timing,
    TraceDiff,
    TraceSource,
    diff,
)
from yolospan.compare._render import SORTS, describe_change, regression_lines, render, row_label, select

__all__ = [
    "SORTS",
    "AttributeChange",
    "DiffError",
    "DiffRow",
    "PhaseDiff",
    "Timing",
    "TraceDiff",
    "TraceSource",
    "describe_change",
    "diff",
    "regression_lines",
    "render",
    "row_label",
    "select",
]
