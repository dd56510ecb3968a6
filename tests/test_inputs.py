"""`yolospan.inputs`: regular files only, and YAML whose expanded size and depth are bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolospan.errors import UserError
from yolospan.inputs import check_regular_file, load_yaml, read_regular_file


def test_yaml_aliases_are_counted_expanded() -> None:
    fan = "[" + ",".join(["*a"] * 10) + "]"
    text = f"a: &a [1, 2, 3]\nb: &b {fan}\nc: {fan.replace('*a', '*b')}\n"  # 1 + 4 + 41 + 411 nodes
    assert load_yaml(text, "t", max_nodes=1000)["c"][0][0] == [1, 2, 3]  # type: ignore[index]
    with pytest.raises(UserError, match=r"^t: expands to more than 400 YAML nodes"):
        load_yaml(text, "t", max_nodes=400)


def test_a_billion_laughs_is_refused_at_once() -> None:
    items = ["&a0 [lol]"] + [f"&a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 10)]
    with pytest.raises(UserError, match="expands to more than"):
        load_yaml("nc: [" + ", ".join(items) + "]\n", "bomb.yaml")


@pytest.mark.parametrize(
    "text", ["x: " + "[" * 20000, "x: " + "[" * 40 + "]" * 40, "x: " + "{a: " * 40 + "1" + "}" * 40]
)
def test_yaml_nesting_is_bounded(text: str) -> None:
    with pytest.raises(UserError, match=r"^deep\.yaml: "):
        load_yaml(text, "deep.yaml")


def test_yaml_errors_carry_the_label_and_the_error_class() -> None:
    class Mine(UserError):
        pass

    with pytest.raises(Mine, match=r"^c\.yaml: not valid YAML: .*\(line \d+, column \d+\)$"):
        load_yaml("a: [1, 2\n", "c.yaml", error=Mine)
    with pytest.raises(Mine, match="could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']\n", "c.yaml", error=Mine)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_devices_fifos_and_directories_are_refused_unopened(tmp_path: Path) -> None:
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    with pytest.raises(UserError, match=r"f\.jsonl: not a regular file \(a FIFO\)"):
        check_regular_file(fifo, "trace file")
    with pytest.raises(UserError, match=r"^/dev/zero: not a regular file \(a device\)"):
        read_regular_file("/dev/zero", "model config", max_bytes=10)
    with pytest.raises(UserError, match=r"not a regular file \(a directory\)"):
        check_regular_file(tmp_path, "image file")
    with pytest.raises(UserError, match=r"nowhere: image file not found"):
        check_regular_file(tmp_path / "nowhere", "image file")
    link = tmp_path / "z.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(UserError, match=r"z\.yaml: not a regular file \(a device\)"):
        check_regular_file(link, "model config")


def test_reading_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"x" * 11)
    assert read_regular_file(path, "model config", max_bytes=11) == b"x" * 11
    with pytest.raises(UserError, match=r"too large for a model config \(limit 10 bytes\)"):
        read_regular_file(path, "model config", max_bytes=10)
