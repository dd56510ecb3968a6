"""Every import in the package follows docs/architecture.md's table of what each part may import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "yolospan"
FOUNDATION = {"attributes", "errors", "inputs", "_version", "_lazy"}


def _part(module: str) -> str | None:
    """``yolospan.tracing._span`` → ``tracing``; ``yolospan`` → ``__init__``; others → None."""
    parts = module.split(".")
    if parts[0] != "yolospan":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _part_of_file(path: Path) -> str:
    relative = path.relative_to(PACKAGE).parts
    return relative[0].removesuffix(".py") if relative[0] != "__init__.py" else "__init__"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "yolospan":  # from yolospan import attributes
                found.update(
                    alias.name
                    if (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                    else "__init__"
                    for alias in node.names
                )
            elif (part := _part(node.module)) is not None:
                found.add(part)
        elif isinstance(node, ast.Import):
            found.update(p for alias in node.names if (p := _part(alias.name)) is not None)
    return found


def _rules() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## What each part may import", 1)[1].split("\n## ", 1)[0]
    rules: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rules[cells[0].strip("`")] = set(re.findall(r"`([\w]+)`", cells[2]))
    return rules


def test_the_table_names_every_part_of_the_package():
    parts = {_part_of_file(path) for path in PACKAGE.rglob("*.py")} - FOUNDATION - {"_contract_doc"}
    assert set(_rules()) == parts


def test_every_import_points_down_as_the_table_says():
    rules = _rules()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part_of_file(path)
        if part in FOUNDATION or part == "_contract_doc":
            continue
        for target in sorted(_imports(path) - {part} - FOUNDATION - rules[part]):
            wrong.append(f"{path.relative_to(ROOT)} imports yolospan.{target}")
    assert not wrong, "imports the table in docs/architecture.md does not allow:\n" + "\n".join(wrong)


def test_the_core_knows_nothing_of_yolo():
    assert "yolo" not in _rules()["tracing"]
    for path in (PACKAGE / "tracing").rglob("*.py"):
        assert "yolo" not in _imports(path), path


def test_the_foundation_imports_only_the_foundation():
    for name in FOUNDATION:
        path = PACKAGE / f"{name}.py"
        assert _imports(path) <= FOUNDATION, path
