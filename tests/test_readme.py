"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_api_example_shows_its_spans(capsys, clean_otel_env):
    """Copied as it is, the example prints the spans it makes (it sets up its own console tree)."""
    api = next(block for block in python_blocks() if "create_model" in block)
    exec(compile(api, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "7235389 parameters" in out.replace(",", "")
    assert out.count("└ model.init") == 2  # build_model, then create_model
    assert out.count("autocast bfloat16") == 1  # the AMP check's second forward
    assert "└ forward  1×3×640×640 → " in out  # the instrumented forward, around its layers:
    assert "Detect #24" in out and "Conv #0" in out
