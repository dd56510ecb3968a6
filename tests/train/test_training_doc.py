"""The user-loop example of docs/training.md runs as printed and makes the documented spans."""

from __future__ import annotations

import re
from pathlib import Path

from yolospan import attributes as A
from yolospan.data import synth_dataset
from yolospan.export.tracefile import read_trace_file
from yolospan.otel import metrics_path
from yolospan.testing import SpanList

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## Your own loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_user_loop_example_runs(tmp_path, monkeypatch, clean_otel_env):
    synth_dataset(tmp_path / "data" / "shapes", images=16, val_images=0, imgsz=128, seed=4)
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(DOC), "exec"), {})
    spans = SpanList.from_readable(read_trace_file(tmp_path / "run.jsonl"))
    assert [s.attributes[A.STEP] for s in spans.find("train_step")] == [0, 2, 4]  # 6 steps, every 2nd
    for step in spans.find("train_step"):
        step.children.assert_names(["forward", "loss", "backward", "optimizer_step"])
    spans.one("model.init")
    assert len({s.attributes[A.RUN_ID] for s in spans}) == 1
    assert "yolospan.train.steps" in metrics_path(tmp_path / "run.jsonl").read_text()
