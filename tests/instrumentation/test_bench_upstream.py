"""bench/upstream_overhead.py runs end to end on both upstream packages (no timing is asserted).

Skipped where ``ultralytics`` or ``yolov5`` is not installed; this directory's conftest keeps
both offline and their settings out of the user's home (the script inherits the environment).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("ultralytics")
pytest.importorskip("yolov5")

BENCH = Path(__file__).resolve().parents[2] / "bench"
ROW = re.compile(r"^(?P<name>\S+)\s+(?P<numbers>(?:-?\d+\.\d+\s*)+)$")
VARIANTS = ["untraced", "model-level", "layers=True", "removed"]
LAYERS = {"yolov8n": 23, "yolov5s": 25}


def _rows(lines: list[str]) -> dict[str, list[float]]:
    return {m["name"]: [float(n) for n in m["numbers"].split()] for m in map(ROW.match, lines) if m}


def test_upstream_overhead_reports_the_square_the_differences_and_the_step_costs_of_both_packages():
    rounds, steps = 4, 5
    done = subprocess.run(
        [
            *(sys.executable, str(BENCH / "upstream_overhead.py"), "--rounds", str(rounds), "--imgsz", "64"),
            *("--diff-imgsz", "32", "--diff-rounds", "4", "--steps", str(steps), "--step-imgsz", "32"),
            *("--batch", "2", "--threads", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    titles = [i for i, line in enumerate(lines) if "eval forward" in line]
    assert [lines[i].split(",")[:3] for i in titles] == [
        ["ultralytics yolov8n 1x3x64x64 eval forward", " fp32", f" {rounds} rounds x 4 copies"],
        ["yolov5 yolov5s 1x3x64x64 eval forward", " fp32", f" {rounds} rounds x 4 copies"],
    ]
    for title, (model, layers) in zip(titles, LAYERS.items(), strict=True):
        # per round, each variant once: two untimed and a timed forward; model-level makes one span
        # each, layers=True the forward's and one per upstream layer (the hook path)
        assert lines[title].endswith(f"1 threads, cpu, {rounds * (3 + 3 * (1 + layers))} spans"), model
        small = next(i for i in range(title, len(lines)) if lines[i].startswith("at 1x3x32x32, 4 rounds"))
        table = _rows(lines[title + 2 : small])
        assert list(table) == VARIANTS
        in_yolospan = {name: values[3] for name, values in table.items()}
        assert in_yolospan["untraced"] == in_yolospan["removed"] == 0.0  # no yolospan code ran
        assert in_yolospan["model-level"] > 0.0 and in_yolospan["layers=True"] > 0.0
        assert table["untraced"][1:3] == [1.0, 0.0]  # paired with itself
        assert list(_rows(lines[small + 1 : small + 4])) == VARIANTS[1:]
        wrapper = re.fullmatch(
            r"wrapped forward \(every variant\): -?\d+\.\d+ us per call, (.*)", lines[small + 4]
        )
        assert wrapper is not None and wrapper[1].startswith("1 + wrapper/median = ")
    heads = [i for i, line in enumerate(lines) if " step, batch 2x3x32x32, untraced" in line]
    assert [lines[i].split(" step,")[0] for i in heads] == ["ultralytics yolov8n", "yolov5 yolov5n"]
    for head, epoch in zip(heads, (0, 1), strict=True):
        assert lines[head + 1].startswith("step ") and lines[head + 1].endswith(" ms")
        spans = [re.search(r"x  (\d+) spans$", lines[head + n]) for n in (2, 3)]
        assert [lines[head + n].split("  ")[0] for n in (2, 3)] == ["every step", "every 100th"]
        # train_step, loss, backward and optimizer_step per traced step: every step, then step 0
        # of the hundred; the yolov5 run also ends its epoch
        assert [int(m[1]) for m in spans if m] == [4 * steps + epoch, 4 + epoch]
