"""Span assertions for tests: record what yolospan traced, query it, fail with the span tree.

Works without pytest (``with SpanRecorder() as spans: ...``); under pytest the ``spans``
fixture of `yolospan.testing.pytest_plugin` hands a fresh recorder to every test that asks.
``yolospan check`` applies the same selectors to saved trace files. See ``docs/testing.md``.
"""

from __future__ import annotations

from yolospan.testing._expect import Expectation, ExpectationError, Outcome, parse_expectation
from yolospan.testing._query import Selector, shorthands
from yolospan.testing._recorder import SpanRecorder
from yolospan.testing._spans import RecordedSpan, SpanAssertionError, SpanList

__all__ = [
    "Expectation",
    "ExpectationError",
    "Outcome",
    "RecordedSpan",
    "Selector",
    "SpanAssertionError",
    "SpanList",
    "SpanRecorder",
    "parse_expectation",
    "shorthands",
]
