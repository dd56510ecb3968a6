"""Every code block of README.md and docs/*.md runs as a test (the rules: tests/docs/docs_blocks.py)."""

from __future__ import annotations

import inspect
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docs_blocks import REPO, Block, MarkerError, blocks, cli_lines, documents

from yolospan.cli import main


def _all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]


def _params() -> list[Any]:
    params = []
    for block in _all_blocks():
        if not block.runs:
            continue
        marks = [pytest.mark.skip(reason=block.skip)] if block.skip is not None else []
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@pytest.mark.parametrize("block", _params())
def test_block(block: Block, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    names: dict[str, Any] = {}
    if block.fixture is not None:
        names.update(request.getfixturevalue(block.fixture))
    if block.language == "python":
        _run_python(block, names)
    else:
        _run_sh(block, tmp_path, capsys)


def _run_python(block: Block, names: dict[str, Any]) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__", **names}
    # Padded to the block's place, so a traceback names the Markdown file and its real line.
    exec(compile("\n" * block.line + block.code, str(block.path), "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            _call_like_pytest(block, value, namespace)


def _call_like_pytest(block: Block, test: Callable[..., object], namespace: dict[str, Any]) -> None:
    """Call a test function the block defines, its parameters taken from the block's namespace;
    ``spans`` is the pytest plugin's fixture: a fresh recorder for this call."""
    from yolospan.testing import SpanRecorder

    arguments: dict[str, Any] = {}
    recorder = None
    for parameter in inspect.signature(test).parameters:
        if parameter in namespace:
            arguments[parameter] = namespace[parameter]
        elif parameter == "spans":
            recorder = arguments["spans"] = SpanRecorder()
        else:
            pytest.fail(
                f"{block.id}: {test.__name__} takes {parameter!r}, which the block does not define; "
                "complete it, or mark the block with a fixture (tests/docs/conftest.py)"
            )
    if recorder is None:
        test(**arguments)
        return
    with recorder:
        test(**arguments)
    recorder.shutdown()


def _run_sh(block: Block, directory: Path, capsys) -> None:
    commands = cli_lines(block.code)
    if not commands:
        pytest.skip("no 'yolospan ...' line: nothing to run")
    for command in commands:
        argv = [_from_repo(argument, directory) for argument in shlex.split(command, comments=True)[1:]]
        try:
            code = main(argv)
        except SystemExit as exit_info:  # argparse's own errors and --help
            code = exit_info.code if isinstance(exit_info.code, int) else 1
        out, err = capsys.readouterr()
        assert code == 0, f"{block.id}: `{command}` exited {code}\n{err}{out}"


def _from_repo(argument: str, directory: Path) -> str:
    """A relative path of the repository (``models/yolov5s.yaml``) that the block's directory lacks."""
    if argument.startswith("-") or os.path.isabs(argument) or "/" not in argument:
        return argument
    if not (directory / argument).exists() and (REPO / argument).exists():
        return str(REPO / argument)
    return argument


# --- the harness itself --------------------------------------------------------------------------


def test_every_document_is_collected_and_has_well_formed_markers() -> None:
    paths = documents()
    assert REPO / "README.md" in paths and REPO / "docs" / "testing.md" in paths
    assert {path.name for path in (REPO / "docs").glob("*.md")} <= {path.name for path in paths}
    for path in paths:
        blocks(path)  # raises MarkerError for a marker that is malformed or before no block


def test_markers_are_read_from_the_line_before_a_block(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- docs-test: skip (needs docker) -->\n```sh\ndocker compose up\n```\n\n"
        "<!-- docs-test: fixture tiny_model -->\n```python\nmodel(x)\n```\n\n"
        "```console\n$ yolospan trace yolov5n\n```\n\n````text\n```python\nnot a block\n```\n````\n"
    )
    found = blocks(doc)
    assert [(b.language, b.skip, b.fixture, b.runs) for b in found] == [
        ("sh", "needs docker", None, True),
        ("python", None, "tiny_model", True),
        ("console", None, None, False),
        ("text", None, None, False),
    ]
    assert found[1].code == "model(x)\n" and found[1].line == 7
    doc.write_text("<!-- docs-test: skip (no block follows) -->\n\ntext\n")
    with pytest.raises(MarkerError, match="must be followed by a code block"):
        blocks(doc)
    doc.write_text("<!-- docs-test: skipped -->\n```sh\nyolospan trace yolov5n\n```\n")
    with pytest.raises(MarkerError, match="expected 'docs-test: skip"):
        blocks(doc)


def test_sh_lines_that_run() -> None:
    code = (
        "yolospan data synth data/shapes --images 64   # a comment\n"
        "$ yolospan check run.jsonl 'model.init == 1' \\\n    'forward == 2'\n"
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 yolospan trace yolov5s\n"
        "docker compose up -d\n"
    )
    assert cli_lines(code) == [
        "yolospan data synth data/shapes --images 64   # a comment",
        "yolospan check run.jsonl 'model.init == 1'      'forward == 2'",
    ]
