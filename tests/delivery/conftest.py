"""Every delivery test: no OTEL_ settings from the shell, and a spool of its own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def spool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_otel_env: None) -> Path:
    """The test's spool directory (``YOLOSPAN_SPOOL_DIR``); not created until something is spooled."""
    directory = tmp_path / "spool"
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(directory))
    return directory
