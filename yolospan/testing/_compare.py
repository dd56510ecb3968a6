"""Compare two runs in a test: what the ``spans`` fixture recorded before and after a change.

``take_run(spans)`` keeps what was recorded so far and clears the recorder for the next run;
`compare_runs` is `yolospan.diff` over two such runs (or recorders, span lists, trace files);
`assert_same_calls` fails with the differing rows when the runs did not make the same calls.
Timing is never asserted on: durations are in the result, for reading, not for ``assert``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from typing import Any, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan

from yolospan import attributes as A
from yolospan.compare import TraceDiff, describe_change, diff, row_label
from yolospan.testing._spans import SpanAssertionError

__all__ = ["Run", "assert_same_calls", "compare_runs", "take_run"]

Run: TypeAlias = "str | os.PathLike[str] | Iterable[Any]"
"""A recorder (``spans``), a `SpanList`, recorded or SDK spans, or a trace file's path."""


def take_run(spans: Iterable[Any]) -> list[ReadableSpan]:
    """The spans recorded so far as one run; a recorder is cleared for the next run."""
    run = _readable(spans)
    clear = getattr(spans, "clear", None)
    if callable(clear) and hasattr(spans, "provider"):
        clear()
    return run


def _readable(run: Iterable[Any]) -> list[ReadableSpan]:
    return [getattr(span, "readable", span) for span in run]


def _source(run: Run) -> str | os.PathLike[str] | list[ReadableSpan]:
    return run if isinstance(run, (str, os.PathLike)) else _readable(run)


def compare_runs(a: Run, b: Run, *, phases: Collection[str] | None = None) -> TraceDiff:
    """`yolospan.diff` of two runs; raises `yolospan.compare.DiffError` when they share nothing."""
    return diff(_source(a), _source(b), phases=phases)


def _full_key(key: str) -> str:
    return key if key.startswith(A.NAMESPACE + ".") else f"{A.NAMESPACE}.{key}"


def assert_same_calls(
    a: Run, b: Run, *, ignore: Collection[str] = (), phases: Collection[str] | None = None
) -> TraceDiff:
    """Both runs made the same forwards and layers with the same shapes, dtypes, devices and FLOPs.

    ``ignore`` names attributes allowed to differ, with or without ``yolospan.`` (``"input.dtype"``).
    Raises `SpanAssertionError` listing each span on one side only and each differing attribute.
    """
    result = compare_runs(a, b, phases=phases)
    allowed = {_full_key(key) for key in ignore}
    problems: list[str] = []
    for phase in result.phases:
        for row in phase.rows:
            where = f"phase {phase.label}, {row_label(row, phase)}"
            if row.side != "both":
                problems.append(f"{where}: only in {row.side.upper()}")
                continue
            problems.extend(
                f"{where}: {describe_change(change)}" for change in row.changes if change.key not in allowed
            )
    if problems:
        shown = "\n".join(f"  {line}" for line in problems)
        raise SpanAssertionError(f"the runs differ in {len(problems)} place(s):\n{shown}")
    return result
