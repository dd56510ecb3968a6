"""Span assertions for tests: record what yolospan traced, query it, fail with the span tree.

Works without pytest (``with SpanRecorder() as spans: ...``); under pytest the ``spans``
fixture of `yolospan.testing.pytest_plugin` hands a fresh recorder to every test that asks.
``yolospan check`` applies the same selectors to saved trace files. See ``docs/testing.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yolospan.testing._expect import Expectation, ExpectationError, Outcome, parse_expectation
    from yolospan.testing._query import Selector, shorthands
    from yolospan.testing._recorder import SpanRecorder
    from yolospan.testing._spans import RecordedSpan, SpanAssertionError, SpanList

# Loaded on first use: pytest imports this package for the plugin in every run of every project
# that has yolospan installed, and the recorder pulls in torch through the tracing core.
_LAZY = {
    "Expectation": "_expect",
    "ExpectationError": "_expect",
    "Outcome": "_expect",
    "parse_expectation": "_expect",
    "Selector": "_query",
    "shorthands": "_query",
    "SpanRecorder": "_recorder",
    "RecordedSpan": "_spans",
    "SpanAssertionError": "_spans",
    "SpanList": "_spans",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
