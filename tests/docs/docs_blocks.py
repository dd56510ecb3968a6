"""The code blocks of README.md and docs/*.md, as README.md ("Development") says they are tested.

- A ```python block runs as written, in a fresh temporary working directory, with its own
  namespace. Functions it defines named ``test_*`` are then called as pytest would call them: each
  parameter is taken from the block's namespace or, for ``spans``, is a fresh `SpanRecorder`.
- A ```sh block runs line by line: each line starting with ``yolospan `` (or ``$ yolospan ``;
  a trailing backslash continues a line, ``#`` starts a comment) is run through the CLI in such a
  directory and must exit 0. An argument naming a path of the repository (``models/yolov5s.yaml``)
  that the directory does not hold is read from the repository. Other lines are not run.
- Every other language is shown, not run.
- ``<!-- docs-test: skip (the reason) -->`` on the line before a block: not run, the reason is the
  skip message. ``<!-- docs-test: fixture NAME -->``: the fixture NAME of tests/docs/conftest.py
  (a dict of names) fills the namespace first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RUN_LANGUAGES = ("python", "sh")

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
_SKIP = re.compile(r"^skip\s*\((?P<reason>.+)\)$")
_FIXTURE = re.compile(r"^fixture\s+(?P<name>[A-Za-z_]\w*)$")


class MarkerError(ValueError):
    """A ``docs-test`` comment that is malformed or stands before no code block."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and what its marker says."""

    path: Path
    line: int  # of the opening fence, counted from 1
    language: str
    code: str
    skip: str | None = None
    fixture: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES


def documents() -> list[Path]:
    """README.md and every docs/*.md, whoever added it."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file; raises `MarkerError` for a marker not before a block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        marker = _MARKER.match(lines[index])
        if marker is not None:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if not _FENCE.match(following):
                raise MarkerError(
                    f"{path.name}:{index + 1}: a docs-test comment must be followed by a code block"
                )
            _parse_marker(marker.group("body"), f"{path.name}:{index + 1}")
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening.group("fence")
        language = opening.group("info").strip().split(" ")[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence) and not lines[end].strip().strip(fence[0])
        ):
            body.append(lines[end])
            end += 1
        skip = fixture = None
        previous = _MARKER.match(lines[index - 1]) if index > 0 else None
        if previous is not None:
            skip, fixture = _parse_marker(previous.group("body"), f"{path.name}:{index}")
        found.append(Block(path, index + 1, language, "\n".join(body) + "\n", skip, fixture))
        index = end + 1
    return found


def _parse_marker(body: str, where: str) -> tuple[str | None, str | None]:
    skip = _SKIP.match(body)
    if skip is not None:
        return skip.group("reason").strip(), None
    fixture = _FIXTURE.match(body)
    if fixture is not None:
        return None, fixture.group("name")
    raise MarkerError(
        f"{where}: expected 'docs-test: skip (the reason)' or 'docs-test: fixture NAME', got {body!r}"
    )


def cli_lines(code: str) -> list[str]:
    """The lines of an sh block that are run: ``yolospan ...``, continuations joined, ``$ `` dropped."""
    joined: list[str] = []
    pending = ""
    for raw in code.splitlines():
        text = raw.rstrip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        joined.append(pending + text)
        pending = ""
    if pending:
        joined.append(pending)
    commands = []
    for text in joined:
        stripped = text.strip()
        if stripped.startswith("$ "):
            stripped = stripped[2:].lstrip()
        if stripped.startswith("yolospan "):
            commands.append(stripped)
    return commands
