"""The pytest plugin (entry point ``pytest11``): the ``spans`` fixture.

Installing yolospan is enough; no conftest is needed. Each test that asks for ``spans`` gets
a fresh `SpanRecorder` that receives everything yolospan traces during the test, through a
value of the OpenTelemetry context rather than OpenTelemetry's global tracer provider.

Every pytest run in an environment with yolospan installed loads this module, so it imports
nothing of its own until a test asks for the fixture.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from yolospan.testing._recorder import SpanRecorder

__all__ = ["pytest_assertrepr_compare", "spans"]

_SHOWN = 5


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """Everything yolospan traces in this test, queryable: ``spans.one("forward", phase=...)``."""
    from yolospan.testing._recorder import SpanRecorder

    recorder = SpanRecorder()
    with recorder:
        yield recorder
    recorder.shutdown()


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """``assert spans.find(...) == []`` fails with the spans found marked in the recorded tree."""
    module = sys.modules.get("yolospan.testing._spans")
    if module is None or op != "==":
        return None  # no span can exist before the module that makes them is imported
    span_list = module.SpanList
    if isinstance(left, span_list):
        found, other, found_is_left = left, right, True
    elif isinstance(right, span_list):
        found, other, found_is_left = right, left, False
    else:
        return None
    from yolospan.testing._report import render_tree

    shown = ", ".join(f"#{span.index} {span.name}" for span in found[:_SHOWN])
    more = f", … (+{len(found) - _SHOWN})" if len(found) > _SHOWN else ""
    found_text = f"[{shown}{more}]"
    recording = found.recording
    return [
        f"{found_text} == {other!r}" if found_is_left else f"{other!r} == {found_text}",
        f"{len(found)} span{'s' if len(found) != 1 else ''} found, marked in the tree:",
        f"recorded spans ({len(recording.spans)}, {recording.source}):",
        *render_tree(recording.spans, {span.index: "found" for span in found}),
    ]
