"""A `TraceDiff` as people read it (one table per phase) and as one line per regression.

Pure functions over the typed rows; the CLI prints what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.compare._diff import AttributeChange, DiffRow, PhaseDiff, Timing, TraceDiff
from yolospan.compare._positions import FORWARD_KIND, LAYER_KIND, PHASE_KIND
from yolospan.export.console import format_duration, format_flops, format_shape, format_value

__all__ = ["SORTS", "describe_change", "regression_line", "regression_lines", "render", "row_label", "select"]

SORTS: Final = ("tree", "ratio")
"""``tree``: phase span, then each forward followed by its layers; ``ratio``: biggest change first."""

_FLOPS_KEYS = (A.FLOPS, A.FLOPS_TORCH)
_GAP = "  "


def select(result: TraceDiff, *, sort: str = "tree", top: int | None = None) -> TraceDiff:
    """The same diff with each phase's rows sorted (`SORTS`) and cut to the first ``top``."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose from {', '.join(SORTS)}")
    phases = []
    for phase in result.phases:
        rows = list(phase.rows)
        if sort == "ratio":
            # Biggest change either way first; rows on one side only come after every timed pair.
            rows.sort(key=lambda row: (row.side != "both", -row.change))
        phases.append(replace(phase, rows=tuple(rows[:top] if top is not None else rows)))
    return replace(result, phases=tuple(phases))


def row_label(row: DiffRow, phase: PhaseDiff) -> str:
    """``train_step (phase)``, ``forward``, ``forward 1`` (several calls), ``#3 Conv`` / ``f1 #3 Conv``."""
    several = len(phase.forwards) > 1
    if row.kind == PHASE_KIND:
        return f"{row.name} (phase)"
    if row.kind == FORWARD_KIND:
        return f"forward {row.forward}" if several else "forward"
    label = f"#{row.layer_index} {row.layer_type}"
    if row.occurrence:
        label += f" ({row.occurrence + 1})"
    return f"f{row.forward} {label}" if several else label


def _timing(timing: Timing | None, spread: bool) -> str:
    if timing is None:
        return "-"
    text = format_duration(round(timing.median_ns))
    if spread and timing.count > 1:
        half = round(timing.spread_ns / 2)
        text += " ±" + (format_duration(half).removesuffix(" ms") if half else "0")
    return text


def _ratio(row: DiffRow) -> str:
    if row.side == "a":
        return "only A"
    if row.side == "b":
        return "only B"
    ratio = row.ratio
    return "-" if ratio is None else f"{ratio:.2f}"


def _value(key: str, value: AttributeValue | None) -> str:
    if value is None:
        return "-"
    if key in _FLOPS_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return format_flops(value)
    if isinstance(value, (list, tuple)) and key.endswith(".shape"):
        return format_shape([int(v) for v in value])
    return format_value(value)


def describe_change(change: AttributeChange) -> str:
    """``input.shape 1×3×320×320 → 1×3×640×640`` (the ``yolospan.`` prefix dropped)."""
    key = change.key.removeprefix(A.NAMESPACE + ".")
    return f"{key} {_value(change.key, change.a)} → {_value(change.key, change.b)}"


def _changes(row: DiffRow, shown_above: set[str]) -> str:
    return "; ".join(text for text in map(describe_change, row.changes) if text not in shown_above)


def common_changes(phase: PhaseDiff) -> list[str]:
    """Changes shared by every forward and layer row on both sides (autocast, a new input size...)."""
    calls = [row for row in phase.rows if row.kind != PHASE_KIND and row.side == "both"]
    if len(calls) < 2:
        return []
    shared = [describe_change(change) for change in calls[0].changes]
    for row in calls[1:]:
        texts = {describe_change(change) for change in row.changes}
        shared = [text for text in shared if text in texts]
    return shared


def _table(phase: PhaseDiff, shown_above: set[str]) -> list[str]:
    spread = phase.distributions
    header = ["span", "A", "B", "B/A", "what differs"]
    body = [
        [
            ("  " if row.kind == LAYER_KIND else "") + row_label(row, phase),
            _timing(row.a, spread),
            _timing(row.b, spread),
            _ratio(row),
            _changes(row, shown_above),
        ]
        for row in phase.rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]
    lines = []
    for line in [header, *body]:
        cells = [line[0].ljust(widths[0]), *(line[i].rjust(widths[i]) for i in (1, 2, 3)), line[4]]
        lines.append(_GAP.join(cells).rstrip())
    return lines


def _phase_title(phase: PhaseDiff) -> str:
    title = f"phase {phase.label}"
    runs = [f"forward {n}: {a} in A, {b} in B" for n, a, b in phase.forwards]
    if phase.distributions:
        title += " (" + "; ".join(runs) + "; times are median ± half the interquartile range)"
    elif len(phase.forwards) > 1:
        title += f" ({len(phase.forwards)} different forwards)"
    return title


def render(result: TraceDiff) -> list[str]:
    """One table per phase; changes shared by all its forwards and layers are said once, above it."""
    lines = [f"A: {result.a}", f"B: {result.b}"]
    for phase in result.phases:
        lines.append("")
        lines.append(_phase_title(phase))
        if not phase.rows:
            lines.append("  (no rows)")
            continue
        common = common_changes(phase)
        if common:
            lines.append("  in every row below: " + "; ".join(common))
        lines.extend("  " + line for line in _table(phase, set(common)))
    return lines


def regression_line(row: DiffRow, phase: PhaseDiff, percent: float) -> str:
    """``phase predict, #3 Conv: 1.20 ms → 1.82 ms, 52% slower (over 20%)``."""
    assert row.a is not None and row.b is not None and row.ratio is not None
    return (
        f"phase {phase.label}, {row_label(row, phase)}: "
        f"{format_duration(round(row.a.median_ns))} → {format_duration(round(row.b.median_ns))}, "
        f"{(row.ratio - 1) * 100:.0f}% slower (over {percent:g}%)"
    )


def regression_lines(result: TraceDiff, percent: float) -> Sequence[str]:
    return [
        regression_line(row, phase, percent)
        for phase in result.phases
        for row in phase.rows
        if row.slower_than(percent)
    ]
