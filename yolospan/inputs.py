"""Reading what a user hands us without trusting it: regular files only, YAML of bounded size.

Every command reads its inputs through these helpers, so a device (``/dev/zero``), a FIFO, a
huge file or a YAML document whose aliases expand to millions of nodes fails at once with one
line naming the input, instead of being read forever. Messages never quote the input's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

import yaml

from yolospan.errors import UserError

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "check_regular_file",
    "load_yaml",
    "read_regular_file",
]

MAX_YAML_NODES: Final = 100_000
"""Nodes a YAML document may hold once every alias is expanded (a real config has a few hundred)."""

MAX_YAML_DEPTH: Final = 32
"""Nesting depth a YAML document may have (a model config needs 5)."""


def check_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it names a regular file (symlinks followed); else a `UserError` naming it.

    Devices, FIFOs, sockets and directories are refused before they are opened: reading
    ``/dev/zero`` never ends and opening a FIFO blocks until a writer comes.
    """
    source = Path(path)
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{source}: {what} not found") from None
    except OSError as error:
        raise UserError(f"{source}: cannot read the {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{source}: not a regular file ({_kind(mode)}); give the path of a {what}")
    return source


def read_regular_file(path: str | os.PathLike[str], what: str, *, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is a `UserError`."""
    source = check_regular_file(path, what)
    try:
        with source.open("rb") as file:
            data = file.read(max_bytes + 1)  # bounded even if the file grows while we read
    except OSError as error:
        raise UserError(f"{source}: cannot read the {what} ({error.strerror or error})") from None
    if len(data) > max_bytes:
        raise UserError(f"{source}: too large for a {what} (limit {max_bytes} bytes)")
    return data


def load_yaml(
    text: str,
    label: str,
    *,
    max_nodes: int = MAX_YAML_NODES,
    max_depth: int = MAX_YAML_DEPTH,
    error: type[UserError] = UserError,
) -> object:
    """``yaml.safe_load`` of ``text``, refusing documents that nest deeper than ``max_depth`` or
    hold more than ``max_nodes`` nodes once aliases are expanded (a "billion laughs" document).

    The events are counted first, without building anything (PyYAML's parser is not recursive),
    so the check itself is bounded by the size of the text. Raises ``error`` (a `UserError`)
    naming ``label``.
    """
    try:
        _check_shape(text, label, max_nodes, max_depth)
        return yaml.safe_load(text)
    except UserError as problem:
        raise error(str(problem)) from None
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = problem.problem or problem.context or "malformed YAML"
        raise error(f"{label}: not valid YAML: {what}{where}") from None
    except yaml.YAMLError as problem:
        first_line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise error(f"{label}: not valid YAML: {first_line}") from None
    except RecursionError:  # the depth check makes this unreachable; kept as the last guard
        raise error(f"{label}: not valid YAML: nested too deeply") from None


def _check_shape(text: str, label: str, max_nodes: int, max_depth: int) -> None:
    sizes: dict[str, int] = {}  # anchor -> nodes in the anchored node, aliases expanded
    stack: list[list[object]] = []  # open collections: [anchor, nodes so far]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > max_depth:
                raise UserError(f"{label}: nested more than {max_depth} levels deep")
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = stack.pop()
            assert isinstance(size, int)
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(str(event.anchor), 1)
        else:
            continue
        if anchor is not None:
            sizes[str(anchor)] = size
        if stack:
            count = stack[-1][1]
            assert isinstance(count, int)
            stack[-1][1] = count + size
            size = count + size
        else:
            total += size
        if size > max_nodes or total > max_nodes:
            raise UserError(
                f"{label}: expands to more than {max_nodes} YAML nodes (through aliases or sheer size)"
            )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
