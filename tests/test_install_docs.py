"""README's install section says what a user of the public index gets, and how to stay CPU-only."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

SETUP = "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0"
FRESH_MACHINE_COMMANDS = (
    f"{SETUP} -e . && .venv/bin/yolospan trace yolov5s",
    f'{SETUP} -e ".[test]" && .venv/bin/python -m pytest',
)


def _install_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## Two commands for a fresh machine", 1)[1].split("\n## ", 1)[0]


def test_the_two_fresh_machine_commands_are_unchanged():
    section = _install_section()
    for command in FRESH_MACHINE_COMMANDS:
        assert f"\n{command}\n" in section


def test_the_public_index_and_the_cpu_wheel_index_are_stated():
    section = " ".join(_install_section().split())
    assert "takes the CPU wheel where one is provided" not in section  # true only with a local wheel store
    assert "From the public index (PyPI) on Linux, the same command installs the CUDA build" in section
    assert "pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in section
