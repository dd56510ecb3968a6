""".ci/floors.txt pins exactly the floors of pyproject.toml's dependencies (torch excepted, see there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _floors_of_pyproject() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors: dict[str, Version] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{line}: every dependency needs one floor (>=) for .ci/floors.txt"
        floors[canonicalize_name(requirement.name)] = Version(lower[0])
    return floors


def _pins_of_floors_file() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_floors_file_pins_every_floor_of_pyproject():
    floors = _floors_of_pyproject()
    del floors["torch"]  # the FLOPs run at the floors reuses the main run's torch wheel
    assert _pins_of_floors_file() == floors


def test_ultralytics_thop_has_no_upper_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (thop,) = [Requirement(d) for d in project["dependencies"] if d.startswith("ultralytics-thop")]
    assert [spec.operator for spec in thop.specifier] == [">="]  # owned rules keep counts stable upward
