"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_api_example_runs_and_is_traced(spans, capsys):
    api = next(block for block in python_blocks() if "create_model" in block)
    exec(compile(api, "README.md", "exec"), {})
    assert "7235389 parameters" in capsys.readouterr().out.replace(",", "")
    spans.assert_count(2, "model.init")
    spans.assert_count(2, "forward", phase="amp_check", input_shape=[1, 3, 640, 480])
    instrumented = spans.find("forward", input_shape=[1, 3, 640, 640])
    assert len(instrumented) == 1 and len(instrumented[0].children) == 25


def test_the_testing_example_passes(spans):
    block = next(block for block in python_blocks() if "def test_" in block)
    namespace: dict[str, object] = {}
    exec(compile("import yolospan\n" + block, "README.md", "exec"), namespace)
    test = next(value for name, value in namespace.items() if name.startswith("test_"))
    test(spans)  # type: ignore[operator]
