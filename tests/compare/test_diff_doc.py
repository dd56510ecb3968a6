"""docs/diff.md: the quick examples run as written (the model comparisons are left to the docs harness)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "diff.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_testing_helpers_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = next(block for block in python_blocks() if "assert_same_calls" in block)
    exec(compile(block, str(DOC), "exec"), {})


def test_every_option_of_the_command_is_documented():
    from yolospan.cli import build_parser

    text = DOC.read_text(encoding="utf-8")
    parser = build_parser()
    diff = parser._subparsers._group_actions[0].choices["diff"]  # type: ignore[union-attr]
    options = [o for action in diff._actions for o in action.option_strings if o.startswith("--")]
    assert options and all(option in text for option in options if option != "--help")
