"""What two ways of tracing the same forwards must agree on, span by span (ids and times aside)."""

from __future__ import annotations

from typing import Any

import pytest

from yolospan import attributes as A

MEASURED = {A.ACHIEVED_FLOPS_PER_S, A.PEAK_FLOPS_PER_S, A.PEAK_FRACTION, A.DEVICE_TIME_MS}
"""Numbers measured per call: their values differ between two runs, their keys must not."""


def content(spans: Any, *, by_start: bool = False) -> list[tuple[Any, ...]]:
    """Names, tree, attributes, status and events of ``spans`` (in start order with ``by_start``).

    Each run must carry the same rate keys, and a span's achieved FLOP/s must be its FLOPs over
    its own duration."""
    spans = sorted(spans, key=lambda s: s.start_time) if by_start else list(spans)
    names = {s.context.span_id: s.name for s in spans}
    for s in spans:
        if A.ACHIEVED_FLOPS_PER_S in s.attributes:
            seconds = (s.end_time - s.start_time) / 1e9
            assert s.attributes[A.ACHIEVED_FLOPS_PER_S] == pytest.approx(s.attributes[A.FLOPS] / seconds)
    return [
        (
            s.name,
            names.get(s.parent.span_id, "elsewhere") if s.parent else None,
            {k: v for k, v in s.attributes.items() if k not in MEASURED},
            sorted(k for k in s.attributes if k in MEASURED),
            s.status.status_code,
            s.status.description,
            [(e.name, e.attributes.get("exception.message")) for e in s.events],
        )
        for s in spans
    ]
