"""The ``trace_file`` fixture: a synthetic trace written as an OTLP JSON file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic_traces import Phase, make_trace, write_trace


@pytest.fixture
def trace_file(tmp_path: Path) -> Callable[..., Path]:
    """``trace_file("a", phase(...), ...)`` writes a synthetic trace to ``tmp_path/a.jsonl``."""

    def make(name: str, *phases: Phase) -> Path:
        return write_trace(tmp_path / f"{name}.jsonl", make_trace(*phases))

    return make
