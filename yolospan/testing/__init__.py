"""Span assertions for tests: record what yolospan traced, query it, fail with the span tree.

Works without pytest (``with SpanRecorder() as spans: ...``); under pytest the ``spans``
fixture of `yolospan.testing.pytest_plugin` hands a fresh recorder to every test that asks.
``yolospan check`` applies the same selectors to saved trace files. See ``docs/testing.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yolospan._lazy import lazy_exports

if TYPE_CHECKING:
    from yolospan.testing._compare import Run, assert_same_calls, compare_runs, take_run
    from yolospan.testing._expect import Expectation, ExpectationError, Outcome, parse_expectation
    from yolospan.testing._query import Selector, shorthands
    from yolospan.testing._recorder import SpanRecorder
    from yolospan.testing._spans import RecordedSpan, SpanAssertionError, SpanList

# Loaded on first use: pytest imports this package for the plugin in every run of every project
# that has yolospan installed, and the recorder pulls in torch through the tracing core.
_LAZY = {
    "Run": "yolospan.testing._compare",
    "assert_same_calls": "yolospan.testing._compare",
    "compare_runs": "yolospan.testing._compare",
    "take_run": "yolospan.testing._compare",
    "Expectation": "yolospan.testing._expect",
    "ExpectationError": "yolospan.testing._expect",
    "Outcome": "yolospan.testing._expect",
    "parse_expectation": "yolospan.testing._expect",
    "Selector": "yolospan.testing._query",
    "shorthands": "yolospan.testing._query",
    "SpanRecorder": "yolospan.testing._recorder",
    "RecordedSpan": "yolospan.testing._spans",
    "SpanAssertionError": "yolospan.testing._spans",
    "SpanList": "yolospan.testing._spans",
}

__all__ = [
    "Expectation",
    "ExpectationError",
    "Outcome",
    "RecordedSpan",
    "Run",
    "Selector",
    "SpanAssertionError",
    "SpanList",
    "SpanRecorder",
    "assert_same_calls",
    "compare_runs",
    "parse_expectation",
    "shorthands",
    "take_run",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
