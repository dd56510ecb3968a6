"""Every hostile command line ends in bounded time and memory with one clear line, never a traceback.

The corpus (`_hostile_cases.CASES`) runs once per session through `_forkserver.py`: one
subprocess that imports torch and yolospan once, then runs each case as a forked child process
with its own folder, environment, address-space and CPU limits and a wall-clock kill, several at
a time. Each case is then one test, so a failure names the case and shows what it printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _hostile_cases import CASES, FIFO, Case, Link

_REPO = Path(__file__).resolve().parents[2]
_SERVER = Path(__file__).with_name("_forkserver.py")
_JOBS = max(2, min(4, os.cpu_count() or 2))
# While working on one kind of input: HOSTILE_ONLY=alias-bomb runs only the cases whose id has it.
_ONLY = os.environ.get("HOSTILE_ONLY", "")
_SELECTED = [case for case in CASES if _ONLY in case.id]


def _populate(folder: Path, files: dict[str, object]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, Link):
            path.symlink_to(content.target)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content), encoding="utf-8")


def _snapshot(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=_REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every case once; returns the results by id plus what was written where."""
    root = tmp_path_factory.mktemp("hostile")
    cases_dir, io_dir = root / "cases", root / "io"
    io_dir.mkdir()
    jobs = []
    for case in _SELECTED:
        folder = cases_dir / case.id
        folder.mkdir(parents=True)
        _populate(folder, case.files)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **case.env,
        }
        jobs.append(
            {
                "id": case.id,
                "argv": list(case.argv),
                "cwd": str(folder),
                "env": env,
                "out": str(io_dir / f"{case.id}.out"),
                "err": str(io_dir / f"{case.id}.err"),
                "timeout_s": case.timeout_s,
                "memory_mb": case.memory_mb,
            }
        )
    before = {case.id: _snapshot(cases_dir / case.id) for case in _SELECTED}
    status_before = _git_status()
    completed = subprocess.run(
        [sys.executable, str(_SERVER), "--jobs", str(_JOBS)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(_REPO)},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = {result["id"]: result for result in json.loads(completed.stdout)}
    for case in _SELECTED:
        result = results[case.id]
        result["stdout"] = (io_dir / f"{case.id}.out").read_text(errors="replace")
        result["stderr"] = (io_dir / f"{case.id}.err").read_text(errors="replace")
        result["written"] = sorted(_snapshot(cases_dir / case.id) - before[case.id])
    return {
        "results": results,
        "root_entries": sorted(path.name for path in root.iterdir()),
        "git_status_changed": _git_status() != status_before,
    }


def test_corpus_is_large() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)


def test_nothing_written_outside_the_case_folders(corpus: dict[str, Any]) -> None:
    assert corpus["root_entries"] == ["cases", "io"]
    assert not corpus["git_status_changed"], "a case wrote into the repository"


@pytest.mark.parametrize("case", _SELECTED, ids=[case.id for case in _SELECTED])
def test_hostile_case(case: Case, corpus: dict[str, Any]) -> None:
    result = corpus["results"][case.id]
    shown = (
        f"argv={list(case.argv)!r}\nstdout:\n{result['stdout'][-2000:]}\nstderr:\n{result['stderr'][-4000:]}"
    )
    assert not result["timed_out"], f"still running after {case.timeout_s} s\n{shown}"
    assert result["signal"] is None, f"killed by signal {result['signal']}\n{shown}"
    assert "Traceback" not in result["stderr"], shown
    assert result["status"] == case.status, shown
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if case.lines is not None:
        assert len(lines) == case.lines, shown
    if case.names:
        assert any(case.names in line for line in lines), f"no stderr line names {case.names!r}\n{shown}"
    for text in case.absent:
        assert text not in result["stdout"] + result["stderr"], f"{text!r} was printed\n{shown}"
    assert "pwned" not in result["written"], shown
